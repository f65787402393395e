package cli

import (
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/internal/ociconformance"
	"github.com/bot-bottle/bb/oci"
)

// TestOCIConformance runs the OCI distribution-spec conformance suite
// against bb serve --allow-push --allow-delete, twice in a row against the
// same server, with a slug and a nested repository name in both roles.
// Every test case of the pull, push, content discovery and content
// management workflows must pass (none skipped); the counts go to the
// test log. The store starts empty: in a store with bb snapshots, DELETE
// of a blob they use (the empty JSON config every metadata artifact
// shares) is refused with 409, as it should be, which the suite counts as
// a failure.
func TestOCIConformance(t *testing.T) {
	bin, err := ociconformance.Binary(t.Context())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	home := t.TempDir()
	s := startServe(t, 0, "--home", home, "serve", "--allow-push", "--allow-delete")
	host := strings.TrimPrefix(s.url(t), "http://")
	store, err := oci.Open(filepath.Join(home, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	for i, repos := range [][2]string{
		{"bb-conformance", "bb-conformance/nested/repo"},
		{"bb-conformance/nested/repo", "bb-conformance"},
	} {
		res, err := ociconformance.Run(t.Context(), ociconformance.Config{
			Binary: bin, Registry: host, Repo1: repos[0], Repo2: repos[1], Dir: t.TempDir(),
		})
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, res.Output)
		}
		t.Logf("run %d (OCI_REPO1=%s, OCI_REPO2=%s): %s", i+1, repos[0], repos[1], res.Duration.Round(1e6))
		for _, l := range res.Counts.Lines() {
			t.Log("  " + l)
		}
		if !res.Pass || !res.Counts.Clean() {
			t.Fatalf("run %d: conformance failures\n%s", i+1, res.Output)
		}
	}
	// The suite deleted what it pushed, and no upload left a temporary
	// file.
	idx, _ := store.Index(t.Context())
	for _, m := range idx.Manifests {
		t.Errorf("left in the store: %s %s", m.Annotations[oci.RefNameAnnotation], m.Digest)
	}
	if files := storetest.IngestFiles(t, store); len(files) != 0 {
		t.Errorf("temporary files left: %v", files)
	}
}
