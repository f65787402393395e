package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/remote"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A pull whose third blob is bad leaves nothing of the image in the
// store: the config and the first layers go again.
func TestFailedPullRemovesItsBlobs(t *testing.T) {
	blobs := map[string][]byte{}
	put := func(b []byte) v1.Descriptor {
		h, n, _ := v1.SHA256(bytes.NewReader(b))
		blobs[h.String()] = b
		return v1.Descriptor{Digest: h, Size: n}
	}
	cfg := put([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	cfg.MediaType = types.OCIConfigJSON
	var layers []v1.Descriptor
	for i := 0; i < 3; i++ {
		l := put([]byte(fmt.Sprintf("layer %d %s", i, strings.Repeat("x", 1000))))
		l.MediaType = types.OCILayer
		layers = append(layers, l)
	}
	bad := layers[2].Digest.String()
	blobs[bad] = bytes.Repeat([]byte("y"), int(layers[2].Size)) // right size, wrong content
	man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: layers})
	mh, _, _ := v1.SHA256(bytes.NewReader(man))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(r.URL.Path, "/v2/r/manifests/"):
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			w.Header().Set("Docker-Content-Digest", mh.String())
			w.Write(man)
		case strings.HasPrefix(r.URL.Path, "/v2/r/blobs/"):
			b, ok := blobs[strings.TrimPrefix(r.URL.Path, "/v2/r/blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	root := t.TempDir()
	s, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/r:t"
	if _, err := remote.Pull(context.Background(), s, ref, remote.Options{Concurrency: 1}); err == nil {
		t.Fatal("pull of a damaged blob succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if len(ents) != 0 {
		t.Fatalf("failed pull left %d blobs in the store", len(ents))
	}
	if files := storetest.IngestFiles(t, s); len(files) != 0 {
		t.Fatalf("failed pull left temp files: %v", files)
	}
}
