package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s with every byte or rune a terminal could act on
// (control characters, escape sequences, bidirectional overrides,
// invalid UTF-8) written as a Go escape (\x1b, \u202e). Names, paths
// and annotations come from bottles, archives and registries: printed
// raw, they could rewrite the screen or the terminal's title.
func printable(s string) string { return escape(s, "") }

// PrintableText is printable for text of several lines (an error with
// the tail of a tool's stderr, a registry's message): newlines and tabs
// stay, every other control character is escaped.
func PrintableText(s string) string { return escape(s, "\n\t") }

func escape(s, keep string) string {
	ok := func(r rune) bool { return unicode.IsPrint(r) || strings.ContainsRune(keep, r) }
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !ok(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case ok(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
