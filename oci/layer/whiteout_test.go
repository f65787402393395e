package layer

import "testing"

func TestReserved(t *testing.T) {
	for p, want := range map[string]bool{
		".wh.foo": true, "work/.wh.foo": true, "work/.wh..wh..opq": true, ".wh.dir/a": true,
		"a/.wh.dir/b/c": true, "/work/.wh.x": true, "./.wh.x": true,
		"foo": false, "work/foo.wh.x": false, "a.wh./b": false, "work/x.wh..wh..opq": false, ".whfoo": false, "": false,
	} {
		if got := Reserved(p); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", p, got, want)
		}
		if got := ReservedBytes([]byte(p)); got != want {
			t.Errorf("ReservedBytes(%q) = %v, want %v", p, got, want)
		}
	}
	for p, want := range map[string]string{"a/b": "a/.wh.b", "b": ".wh.b", "a/b/c": "a/b/.wh.c"} {
		if got := WhiteoutName(p); got != want {
			t.Errorf("WhiteoutName(%q) = %q, want %q", p, got, want)
		}
	}
}
