package bottle_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// Commit a directory (a root filesystem) into the local store as the
// snapshot of bottle "demo", then boot it again: the dir backend
// extracts the snapshot into another directory.
func ExampleManager_Commit() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "bb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// The bottle: a tiny root filesystem.
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "home/agent"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "home/agent/notes.txt"), []byte("work in progress\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	store, err := oci.Open(filepath.Join(tmp, "oci"))
	if err != nil {
		log.Fatal(err)
	}
	home := state.Home{Dir: filepath.Join(tmp, "home")}
	m := &bottle.Manager{
		Home:     home,
		Store:    store,
		Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: home}},
	}

	res, err := m.Commit(ctx, "demo", bottle.CommitOptions{
		Backend: bottle.Dir,
		Prepare: bottle.PrepareOptions{Dir: rootfs},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed", res.Slug, "with the", res.Backend, "backend")
	desc, err := store.Resolve(ctx, "demo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("store tag demo names", desc.MediaType, desc.Digest.String() == res.Digest)

	out := filepath.Join(tmp, "resumed")
	if _, err := m.Resume(ctx, "demo", bottle.ResumeRequest{Resume: bottle.ResumeOptions{Dir: out, Settle: -1}}); err != nil {
		log.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "home/agent/notes.txt"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("resumed: %s", b)
	// Output:
	// committed demo with the dir backend
	// store tag demo names application/vnd.oci.image.manifest.v1+json true
	// resumed: work in progress
}
