package registry_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bb/internal/testing/storetest"
	"github.com/bot-bottle/bb/registry"
)

// TestUploadEvictionConcurrent: clients that abandon uploads never lock
// out the others. Many goroutines open uploads against a cap of 4; each
// either completes its blob or finds its session evicted (404), and a
// client refused while every open upload is inside a request gets in when
// it retries.
func TestUploadEvictionConcurrent(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true, MaxUploads: 4})
	base := srv.URL() + "/v2/race/blobs/uploads/"
	var wg sync.WaitGroup
	var mu sync.Mutex
	status := map[string]int{}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half abandon their upload after one chunk. A 429 says all
			// open uploads are inside a request right now (on a busy
			// machine, all four POSTs may still be running): a client
			// retries, and must get in once one goes idle. The retries
			// are bounded by time, not by count: a request in flight may
			// sync its file to a busy disk.
			var resp *http.Response
			var err error
			deadline := time.Now().Add(30 * time.Second)
			for {
				if resp, err = http.Post(base, "", nil); err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			status[fmt.Sprintf("POST %d", resp.StatusCode)]++
			mu.Unlock()
			if resp.StatusCode != http.StatusAccepted {
				return
			}
			u := srv.URL() + resp.Header.Get("Location")
			blob := randomBytes(uint64(i), 1000)
			req, _ := http.NewRequest(http.MethodPatch, u, bytes.NewReader(blob))
			if resp, err = http.DefaultClient.Do(req); err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if i%2 == 1 || resp.StatusCode != http.StatusAccepted {
				return
			}
			req, _ = http.NewRequest(http.MethodPut, u+"?digest="+digestOf(blob).String(), nil)
			if resp, err = http.DefaultClient.Do(req); err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			status[fmt.Sprintf("PUT %d", resp.StatusCode)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if status["POST 202"] != 16 {
		t.Errorf("uploads refused at the cap even after retries: %v", status)
	}
	t.Logf("statuses: %v", status)
	if files := storetest.IngestFiles(t, f.store); len(files) > 4 {
		t.Errorf("%d temporary files with a cap of 4 uploads", len(files))
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, f.store)
}
