package fileindex

import (
	"strings"
)

// FindFormat is the find -printf format of one record.
const FindFormat = `%y %m %U %G %s %T@ %C@ %i %n\0%P\0%l\0`

// FindScript returns a POSIX sh script that prints a listing of the root
// filesystem (see the package doc) with GNU find (and date): the
// contents of excludes (paths relative to the root) are left out, their
// directories kept, as the tar stream does; with oneFS other filesystems
// are not descended into (find -xdev, like tar --one-file-system).
func FindScript(excludes []string, oneFS bool) string {
	var b strings.Builder
	// Without %N (BusyBox date) the start is rounded down to the second,
	// which only widens the racy window.
	// Absolute paths: a BusyBox sh runs its own applets for bare names.
	b.WriteString(`f=find; for p in /usr/local/bin/find /usr/bin/find /bin/find; do if [ -x "$p" ]; then f=$p; break; fi; done; `)
	b.WriteString(`d=date; for p in /usr/local/bin/date /usr/bin/date /bin/date; do if [ -x "$p" ]; then d=$p; break; fi; done; `)
	b.WriteString(`t=$("$d" +%s.%N) || exit 2; case $t in *N*|*.) t=$("$d" +%s) || exit 2;; esac; `)
	b.WriteString(`printf '` + Magic + ` %s\n' "$t" && cd / && exec "$f" .`)
	if oneFS {
		b.WriteString(" -xdev")
	}
	var ex []string
	for _, e := range excludes {
		e = strings.Trim(e, "/")
		if e == "" {
			continue
		}
		ex = append(ex, "-path "+shQuote("./"+e+"/*"), `\( -path `+shQuote("./"+e)+` ! -type d \)`)
	}
	if len(ex) > 0 {
		b.WriteString(` \( ` + strings.Join(ex, " -o ") + ` \) -prune -o`)
	}
	b.WriteString(" -printf " + shQuote(FindFormat))
	return b.String()
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
