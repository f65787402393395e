package ociconformance

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Module and Version pin the suite; scripts/test-deps.sh installs it as
// $(go env GOPATH)/bin/conformance.
const (
	Module  = "github.com/opencontainers/distribution-spec/conformance"
	Version = "v0.0.0-20260831232431-97274622c111"
	// EnvBinary names another build of the suite.
	EnvBinary = "BB_OCI_CONFORMANCE"
)

// ErrNotInstalled: the suite is not where Binary looks.
var ErrNotInstalled = errors.New("the OCI conformance suite is not installed")

// Binary returns the suite's program: $BB_OCI_CONFORMANCE, else
// $(go env GOPATH)/bin/conformance.
func Binary(ctx context.Context) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	gopath, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "conformance")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: go install %s@%s (scripts/test-deps.sh does), or set %s", ErrNotInstalled, Module, Version, EnvBinary)
}

// Workflows are the specification's conformance workflows, in order.
var Workflows = []string{"pull", "push", "content discovery", "content management"}

// Workflow sorts one test case of the suite (a path like
// "OCI Conformance Test/image/push/blob-post-put") into its workflow, or
// "ping".
func Workflow(name string) string {
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

// Statuses of a test case, as the suite's junit.xml writes them.
const (
	Passed  = "passed"
	Skipped = "skipped"
	Failure = "failure"
	Error   = "error"
)

// Counts are, per workflow, the number of test cases in each status.
type Counts map[string]map[string]int

// Clean reports whether every case of every workflow in Workflows passed
// (none failed, errored or was skipped) and each workflow had some.
func (c Counts) Clean() bool {
	for _, w := range Workflows {
		n := c[w]
		if n[Passed] == 0 || n[Failure]+n[Error]+n[Skipped] > 0 {
			return false
		}
	}
	return true
}

// Lines formats the counts, one workflow a line.
func (c Counts) Lines() []string {
	var names []string
	for w := range c {
		names = append(names, w)
	}
	sort.Strings(names)
	var out []string
	for _, w := range names {
		n := c[w]
		out = append(out, fmt.Sprintf("%-19s passed %3d, failed %d, errors %d, skipped %d", w+":", n[Passed], n[Failure], n[Error], n[Skipped]))
	}
	return out
}

// Config is one run of the suite.
type Config struct {
	Binary string
	// Registry is HOST:PORT, served over plain HTTP.
	Registry     string
	Repo1, Repo2 string
	// Dir receives the suite's reports (junit.xml, results.yaml,
	// report.html).
	Dir string
}

// Result is what one run found.
type Result struct {
	// Pass: the suite's own verdict ("OCI Conformance Result: Pass").
	Pass     bool
	Counts   Counts
	Output   []byte
	Duration time.Duration
}

// Run runs the suite once with every optional API and data set on, so a
// feature the registry lacks shows as a failure or a skip. A failing
// suite is a Result with Pass false, not an error.
func Run(ctx context.Context, c Config) (*Result, error) {
	cmd := exec.CommandContext(ctx, c.Binary)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+c.Registry,
		"OCI_TLS=disabled",
		"OCI_REPO1="+c.Repo1,
		"OCI_REPO2="+c.Repo2,
		"OCI_RESULTS_DIR="+c.Dir,
		"OCI_LOG=error",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_REFERRER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_DATA_SHA512=true",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := &Result{Output: out, Duration: time.Since(start), Pass: strings.Contains(string(out), "OCI Conformance Result: Pass")}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return r, fmt.Errorf("running %s: %w", c.Binary, err)
	}
	if r.Counts, err = ReadCounts(filepath.Join(c.Dir, "junit.xml")); err != nil {
		return r, err
	}
	return r, nil
}

// ReadCounts sorts the test cases of a junit.xml the suite wrote.
func ReadCounts(path string) (Counts, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conformance results: %w", err)
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
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	out := Counts{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			w := Workflow(c.Name)
			if out[w] == nil {
				out[w] = map[string]int{}
			}
			out[w][c.Status]++
		}
	}
	return out, nil
}
