package registry_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
)

// EnvConformance names a binary of the OCI distribution-spec conformance
// suite (github.com/opencontainers/distribution-spec/conformance); when
// set, TestOCIConformance runs it against a push-enabled registry.
const EnvConformance = "BB_OCI_CONFORMANCE"

func TestOCIConformance(t *testing.T) {
	bin := os.Getenv(EnvConformance)
	if bin == "" {
		t.Skip("set " + EnvConformance + " to the distribution-spec conformance binary to run it")
	}
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := start(t, s, registry.Options{AllowPush: true})
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+srv.Host(),
		"OCI_TLS=disabled",
		"OCI_REPO1=repo1",
		"OCI_REPO2=repo2",
		"OCI_RESULTS_DIR="+cmd.Dir,
		// bb never deletes through the registry (bb prune and bb gc do).
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		// The store holds sha256 content only.
		"OCI_DATA_SHA512=false",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
	)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OCI Conformance Result: Pass") {
		t.Fatalf("conformance suite: %v\n%s", err, out)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, s)
}
