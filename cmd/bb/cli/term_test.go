package cli

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain /path é":     "plain /path é",
		"a\x1b[2Jb":         `a\x1b[2Jb`,
		"title\x1b]0;x\x07": `title\x1b]0;x\a`,
		"cr\rlf\n":          `cr\rlf\n`,
		"bad\xffutf8":       `bad\xffutf8`,
		"rtl\u202eoverride": `rtl\u202eoverride`,
		"tab\there":         `tab\there`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"line 1\nline 2\tx":    "line 1\nline 2\tx",
		"msg \x1b]0;x\x07\r\n": "msg \\x1b]0;x\\a\\r\n",
	} {
		if got := PrintableText(in); got != want {
			t.Errorf("PrintableText(%q) = %q, want %q", in, got, want)
		}
	}
}
