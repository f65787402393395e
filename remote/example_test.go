package remote_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/remote"
	"github.com/bot-bottle/bb/state"
)

// Push a snapshot to a registry (here bb's own, the one bb serve runs,
// in process on a loopback port) and pull it into another store.
func ExamplePush() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "bb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// A snapshot to push: a directory committed as bottle "demo".
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/motd"), []byte("hello\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	store, err := oci.Open(filepath.Join(tmp, "oci"))
	if err != nil {
		log.Fatal(err)
	}
	home := state.Home{Dir: filepath.Join(tmp, "home")}
	m := &bottle.Manager{Home: home, Store: store, Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: home}}}
	if _, err := m.Commit(ctx, "demo", bottle.CommitOptions{Backend: bottle.Dir, Prepare: bottle.PrepareOptions{Dir: rootfs}}); err != nil {
		log.Fatal(err)
	}

	// A registry that accepts pushes, over a store of its own.
	regStore, err := oci.Open(filepath.Join(tmp, "registry"))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := registry.Start(ctx, regStore, registry.Options{AllowPush: true})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	src, err := store.Resolve(ctx, "demo")
	if err != nil {
		log.Fatal(err)
	}
	ref := srv.Ref("bottles/demo", "v1")
	pushed, err := remote.Push(ctx, store, src, ref, remote.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pushed", pushed.Digest == src.Digest, "with metadata:", pushed.Metadata != nil)

	// Pull it back into an empty store; the image stays untagged until a
	// caller adopts it (bottle.Manager.Adopt, as bb pull does).
	other, err := oci.Open(filepath.Join(tmp, "other"))
	if err != nil {
		log.Fatal(err)
	}
	pulled, err := remote.Pull(ctx, other, ref, remote.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pulled", pulled.Slug, pulled.Manifest.Digest == src.Digest, "with metadata:", pulled.Metadata != nil)
	// Output:
	// pushed true with metadata: true
	// pulled demo true with metadata: true
}
