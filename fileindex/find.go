package fileindex

import (
	"strings"
)

// FindFormat is the find -printf format of one record.
const FindFormat = `%y %m %U %G %s %T@ %C@ %i %n\0%P\0%l\0`

// FindScript returns a POSIX sh script that prints a listing of the root
// filesystem (see the package doc) with GNU find and GNU date: the
// contents of excludes (paths relative to the root) are left out, their
// directories kept, as the tar stream does; with oneFS other filesystems
// are not descended into (find -xdev, like tar --one-file-system).
func FindScript(excludes []string, oneFS bool) string {
	var b strings.Builder
	b.WriteString(`t=$(date +%s.%N) || exit 2; case $t in *N*) echo "date has no %N" >&2; exit 2;; esac; `)
	b.WriteString(`printf '` + Magic + ` %s\n' "$t" && cd / && exec find .`)
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
