package cli

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
)

// The OCI distribution-spec conformance suite
// (github.com/opencontainers/distribution-spec/conformance), at the version
// scripts/test-deps.sh installs as $(go env GOPATH)/bin/conformance.
// BB_OCI_CONFORMANCE names another build of it.
const (
	conformanceModule  = "github.com/opencontainers/distribution-spec/conformance"
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"
	envConformance     = "BB_OCI_CONFORMANCE"
)

// conformanceBinary finds the suite, failing under CI when it is missing.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envConformance); p != "" {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "conformance")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := fmt.Sprintf("the OCI conformance suite is not installed: go install %s@%s (scripts/test-deps.sh does), or set %s", conformanceModule, conformanceVersion, envConformance)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// The conformance workflows of the distribution specification.
var conformanceWorkflows = []string{"pull", "push", "content discovery", "content management"}

// conformanceWorkflow sorts one test case of the suite (a path like
// "OCI Conformance Test/image/push/blob-post-put") into its workflow.
func conformanceWorkflow(name string) string {
	leaf := name[strings.LastIndex(name, "/")+1:]
	switch {
	case strings.HasSuffix(leaf, "-delete") || leaf == "blob-post-cancel":
		return "content management"
	case leaf == "tag-list" || leaf == "tag list" || leaf == "referrers":
		return "content discovery"
	case strings.Contains(name, "/push/") || strings.HasPrefix(leaf, "blob-post") ||
		strings.HasPrefix(leaf, "blob-patch") || strings.HasPrefix(leaf, "blob-mount") || leaf == "manifest-put":
		return "push"
	case leaf == "ping":
		return "ping"
	}
	return "pull"
}

// conformanceCounts reads the suite's junit.xml: per workflow, the number
// of test cases in each status (passed, skipped, failure, error).
func conformanceCounts(t *testing.T, dir string) map[string]map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance results: %v", err)
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name   string `xml:"name,attr"`
				Status string `xml:"status,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parsing junit.xml: %v", err)
	}
	out := map[string]map[string]int{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			w := conformanceWorkflow(c.Name)
			if out[w] == nil {
				out[w] = map[string]int{}
			}
			out[w][c.Status]++
		}
	}
	return out
}

// TestOCIConformance runs the conformance suite against bb serve
// --allow-push --allow-delete, twice in a row against the same server,
// with a slug and a nested repository name in both roles. Every test case
// of the pull, push, content discovery and content management workflows
// must pass (none skipped). The store starts empty: in a store with bb
// snapshots, DELETE of a blob they use (the empty JSON config every
// metadata artifact shares) is refused with 409, as it should be, and the
// suite counts that as a failure.
func TestOCIConformance(t *testing.T) {
	bin := conformanceBinary(t)
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
		dir := t.TempDir()
		cmd := exec.CommandContext(t.Context(), bin)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"OCI_REGISTRY="+host,
			"OCI_TLS=disabled",
			"OCI_REPO1="+repos[0],
			"OCI_REPO2="+repos[1],
			"OCI_RESULTS_DIR="+dir,
			"OCI_LOG=error",
			// Every optional API on: a feature bb lacks must show as a
			// failure or a skip, not pass unseen.
			"OCI_API_BLOBS_DELETE=true",
			"OCI_API_MANIFESTS_DELETE=true",
			"OCI_API_TAGS_DELETE=true",
			"OCI_API_BLOBS_UPLOAD_CANCEL=true",
			"OCI_API_BLOBS_DIGEST_HEADER=true",
			"OCI_API_MANIFESTS_DIGEST_HEADER=true",
			"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
			"OCI_API_REFERRER=true",
			"OCI_DATA_SHA512=true",
		)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("run %d (OCI_REPO1=%s, OCI_REPO2=%s): %s", i+1, repos[0], repos[1], time.Since(start).Round(time.Millisecond))
		counts := conformanceCounts(t, dir)
		var names []string
		for w := range counts {
			names = append(names, w)
		}
		sort.Strings(names)
		for _, w := range names {
			c := counts[w]
			t.Logf("  %-19s passed %3d, failed %d, errors %d, skipped %d", w+":", c["passed"], c["failure"], c["error"], c["skipped"])
		}
		for _, w := range conformanceWorkflows {
			c := counts[w]
			if c["passed"] == 0 || c["failure"]+c["error"]+c["skipped"] > 0 {
				t.Errorf("run %d: workflow %s: %v", i+1, w, c)
			}
		}
		if err != nil || !strings.Contains(string(out), "OCI Conformance Result: Pass") || t.Failed() {
			t.Fatalf("run %d: conformance suite: %v\n%s", i+1, err, out)
		}
	}
	// The suite deleted what it pushed, and no upload left a temporary
	// file.
	idx, _ := store.Index(t.Context())
	for _, m := range idx.Manifests {
		t.Errorf("left in the store: %s %s", m.Annotations[oci.RefNameAnnotation], m.Digest)
	}
	if files, _ := store.IngestFiles(); len(files) != 0 {
		t.Errorf("temporary files left: %v", files)
	}
}
