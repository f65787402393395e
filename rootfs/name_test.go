package rootfs

import "testing"

func TestHasDotDot(t *testing.T) {
	for n, want := range map[string]bool{
		"":          false,
		"a/b":       false,
		"..":        true,
		"../a":      true,
		"a/../b":    true,
		"a/..":      true,
		"/a/..//b":  true,
		"a/..b/c":   false,
		"...":       false,
		"a/b../c":   false,
		"./a/./b/.": false,
	} {
		if got := HasDotDot(n); got != want {
			t.Errorf("HasDotDot(%q) = %v, want %v", n, got, want)
		}
	}
}
