package ociconformance

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadCounts(t *testing.T) {
	junit := `<testsuites><testsuite name="x" tests="6" failures="1" errors="0" time="1">
<testcase name="OCI Conformance Test/ping" status="passed"></testcase>
<testcase name="OCI Conformance Test/image/push/blob-post-put" status="passed"></testcase>
<testcase name="OCI Conformance Test/image/pull/manifest-by-digest" status="passed"></testcase>
<testcase name="OCI Conformance Test/image/tag-list" status="passed"></testcase>
<testcase name="OCI Conformance Test/image/delete/blob-delete" status="failure"></testcase>
<testcase name="OCI Conformance Test/sha256 blobs/range requests/range 500-" status="skipped"></testcase>
</testsuite></testsuites>`
	p := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(p, []byte(junit), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCounts(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int{
		"ping":               {Passed: 1},
		"push":               {Passed: 1},
		"pull":               {Passed: 1, Skipped: 1},
		"content discovery":  {Passed: 1},
		"content management": {Failure: 1},
	}
	for w, m := range want {
		for st, n := range m {
			if c[w][st] != n {
				t.Errorf("%s %s: %d, want %d (all: %v)", w, st, c[w][st], n, c)
			}
		}
	}
	if c.Clean() {
		t.Error("counts with a failure and a skip are clean")
	}
	c["content management"] = map[string]int{Passed: 1}
	c["pull"] = map[string]int{Passed: 2}
	if !c.Clean() {
		t.Errorf("clean counts: %v", c)
	}
}
