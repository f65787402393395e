package storetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/oci"
)

// IngestFiles lists the temporary files now in the store's ingest
// directory: writes in progress, or left behind by a failed one.
func IngestFiles(t testing.TB, s *oci.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "ingest"))
	if err != nil {
		t.Fatalf("listing the store's temporary files: %v", err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
