package state

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
)

// mkdirState creates the home, state/ and state/<slug> directories,
// private (0700) whatever the umask.
func (h Home) mkdirState(slug string) error {
	for _, d := range []string{h.Dir, filepath.Join(h.Dir, "state"), h.StateDir(slug)} {
		if err := oci.MkdirPrivate(d, nil); err != nil {
			return err
		}
	}
	return nil
}

// Secure makes bb's files under the home private: the home and state/
// directories and every state/<slug> directory become 0700, the files bb
// writes there lose their group and other bits, and temporary files of
// killed writes older than oci.TempGrace go. Each change is reported on
// log. A home that does not exist yet is left alone.
func (h Home) Secure(log *slog.Logger) error {
	if _, err := os.Lstat(h.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := oci.MkdirPrivate(h.Dir, log); err != nil {
		return err
	}
	sd := filepath.Join(h.Dir, "state")
	if _, err := os.Lstat(sd); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := oci.MkdirPrivate(sd, log); err != nil {
		return err
	}
	slugs, err := h.Slugs()
	if err != nil {
		return err
	}
	for _, slug := range slugs {
		dir := h.StateDir(slug)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if err := oci.MkdirPrivate(dir, log); err != nil {
			return err
		}
		for _, f := range []string{MetadataFile, CommittedImageFile, PreserveMarker, LoadedFile} {
			if err := oci.TightenFile(filepath.Join(dir, f), log); err != nil {
				return err
			}
			if _, err := iox.RemoveStaleBeside(filepath.Join(dir, f), oci.TempGrace); err != nil {
				return err
			}
		}
	}
	return nil
}

// TempFiles lists the temporary files of atomic writes in the state
// directories (for bb doctor).
func (h Home) TempFiles() ([]string, error) {
	slugs, err := h.Slugs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, slug := range slugs {
		ents, err := os.ReadDir(h.StateDir(slug))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
				out = append(out, filepath.Join(h.StateDir(slug), e.Name()))
			}
		}
	}
	return out, nil
}

// Check reports what Secure would change (modes, stale temporary files)
// as findings, and changes it when fix is set.
func (h Home) Check(fix bool) ([]oci.Finding, error) {
	var out []oci.Finding
	mode := func(p string, dir bool) {
		if f := oci.CheckMode(p, dir, fix); f != nil {
			out = append(out, *f)
		}
	}
	if _, err := os.Lstat(h.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	mode(h.Dir, true)
	if _, err := os.Lstat(filepath.Join(h.Dir, "state")); err != nil {
		return out, nil
	}
	mode(filepath.Join(h.Dir, "state"), true)
	slugs, err := h.Slugs()
	if err != nil {
		return out, err
	}
	for _, slug := range slugs {
		dir := h.StateDir(slug)
		mode(dir, true)
		for _, f := range []string{MetadataFile, CommittedImageFile, PreserveMarker, LoadedFile} {
			mode(filepath.Join(dir, f), false)
		}
	}
	temps, err := h.TempFiles()
	if err != nil {
		return out, err
	}
	before := time.Now().Add(-oci.TempGrace)
	for _, p := range temps {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(before) {
			continue
		}
		f := oci.Finding{Kind: oci.FindingTemp, Path: p, Problem: "temporary file of a killed write", Fix: "remove it"}
		if fix && os.Remove(p) == nil {
			f.Fixed = true
		}
		out = append(out, f)
	}
	return out, nil
}
