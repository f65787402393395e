package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/testregistry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tool finds a test tool in PATH or in $GOPATH/bin (where
// scripts/test-deps.sh installs crane and regctl); it skips the test when
// the tool is missing, or fails it under CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gp)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing (scripts/test-deps.sh installs it)", name)
	}
	t.Skipf("%s is missing (scripts/test-deps.sh installs it)", name)
	return ""
}

func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
	return out
}

type convertedPush struct {
	Digest     string `json:"digest"`
	Conversion *struct {
		Converted    bool `json:"converted"`
		Recompressed int  `json:"recompressed"`
		Reused       int  `json:"reused"`
		Source       struct {
			Digest string `json:"digest"`
		} `json:"source"`
	} `json:"conversion"`
	Blobs []struct {
		Status string `json:"status"`
	} `json:"blobs"`
}

// layerTypes returns the layer media types and the config digest of a
// manifest.
func layerTypes(t *testing.T, raw []byte) ([]types.MediaType, string) {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	var out []types.MediaType
	for _, l := range m.Layers {
		out = append(out, l.MediaType)
	}
	return out, m.Config.Digest.String()
}

// storedManifest returns the manifest bb inspect shows for ref.
func storedManifest(t *testing.T, home, ref string) []byte {
	t.Helper()
	var ins struct {
		Manifest json.RawMessage `json:"manifest"`
	}
	out := mustRunBB(t, "--home", home, "inspect", ref, "--json")
	if err := json.Unmarshal([]byte(out), &ins); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	return ins.Manifest
}

// A gzip snapshot pushed with --compression zstd lands in a
// distribution registry with zstd layers that skopeo and crane read; a
// second push reuses the converted copy; bb pull brings it back and
// resume gives the committed tree. A zstd snapshot goes up as gzip.
func TestPushCompression(t *testing.T) {
	t.Parallel()
	testregistry.Require(t)
	skopeo, crane := tool(t, "skopeo"), tool(t, "crane")
	reg := testregistry.Start(t, testregistry.Options{})
	src := writeTree(t)
	home1, home2 := t.TempDir(), t.TempDir()
	mustRunBB(t, "--home", home1, "commit", "--from-dir", src, "--slug", "zstd-push")
	stored, storedCfg := layerTypes(t, storedManifest(t, home1, "zstd-push"))
	ref := reg.Repo("zstd/push:v1")

	var first convertedPush
	out := mustRunBB(t, "--home", home1, "push", "zstd-push", ref, "--compression", "zstd", "--json")
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatalf("push --json: %v\n%s", err, out)
	}
	if c := first.Conversion; c == nil || !c.Converted || c.Recompressed != 1 || c.Source.Digest == first.Digest {
		t.Fatalf("push --compression zstd: %s", out)
	}
	raw := runTool(t, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
	if h, _, _ := v1.SHA256(strings.NewReader(string(raw))); h.String() != first.Digest {
		t.Fatalf("skopeo sees %s, bb pushed %s", h, first.Digest)
	}
	lt, cfg := layerTypes(t, raw)
	if len(lt) != 1 || lt[0] != types.OCILayerZStd || stored[0] != types.OCILayer {
		t.Fatalf("registry manifest layers %v (stored %v)", lt, stored)
	}
	if craneRaw := runTool(t, crane, "manifest", "--insecure", ref); string(craneRaw) != string(raw) {
		t.Fatalf("crane manifest differs from skopeo's:\n%s\n%s", craneRaw, raw)
	}
	if c := strings.TrimSpace(string(runTool(t, crane, "config", "--insecure", ref))); !strings.Contains(c, `"diff_ids"`) {
		t.Fatalf("crane config: %s", c)
	}
	if cfg != storedCfg {
		t.Fatalf("the pushed config %s is not the stored %s", cfg, storedCfg)
	}

	var second convertedPush
	out = mustRunBB(t, "--home", home1, "push", "zstd-push", ref, "--compression", "zstd", "--json")
	if err := json.Unmarshal([]byte(out), &second); err != nil {
		t.Fatal(err)
	}
	if second.Digest != first.Digest || second.Conversion == nil || second.Conversion.Recompressed != 0 {
		t.Fatalf("second push did not reuse the converted copy: %s", out)
	}
	for _, b := range second.Blobs {
		if b.Status != "exists" {
			t.Fatalf("second push: %s", out)
		}
	}
	// The slug's snapshot in the store is still the gzip one.
	if again, _ := layerTypes(t, storedManifest(t, home1, "zstd-push")); again[0] != types.OCILayer {
		t.Fatalf("the stored snapshot changed: %v", again)
	}

	mustRunBB(t, "--home", home2, "pull", ref, "--as", "zstd-back")
	if back, _ := layerTypes(t, storedManifest(t, home2, "zstd-back")); back[0] != types.OCILayerZStd {
		t.Fatalf("pulled layers %v", back)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	mustRunBB(t, "--home", home2, "resume", "zstd-back", "--backend", "dir", "--dir", dst)
	sameTree(t, src, dst)

	// The pulled zstd snapshot goes up as gzip when asked.
	ref2 := reg.Repo("zstd/back:v1")
	out = mustRunBB(t, "--home", home2, "push", "zstd-back", ref2, "--compression", "gzip")
	if !strings.Contains(out, "layers sent as gzip") {
		t.Fatalf("push --compression gzip: %s", out)
	}
	lt, _ = layerTypes(t, runTool(t, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref2))
	if lt[0] != types.OCILayer {
		t.Fatalf("registry layers %v, want gzip", lt)
	}
	if _, err := runBB(t, "--home", home2, "push", "zstd-back", ref2, "--compression", "brotli"); err == nil {
		t.Fatal("unknown compression accepted")
	}
}
