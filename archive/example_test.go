package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// host is a bb home and store with the dir backend, as on one machine.
func host(base string) *bottle.Manager {
	store, err := oci.Open(filepath.Join(base, "oci"))
	if err != nil {
		log.Fatal(err)
	}
	home := state.Home{Dir: filepath.Join(base, "home")}
	return &bottle.Manager{Home: home, Store: store, Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: home}}}
}

// Export a snapshot as one archive (an OCI layout that docker load also
// reads) and import it on another host, where it becomes the bottle's
// current snapshot.
func ExampleExport() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "bb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// On the first host: commit a directory as bottle "demo".
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/motd"), []byte("hello\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	a := host(filepath.Join(tmp, "a"))
	if _, err := a.Commit(ctx, "demo", bottle.CommitOptions{Backend: bottle.Dir, Prepare: bottle.PrepareOptions{Dir: rootfs}}); err != nil {
		log.Fatal(err)
	}

	// Export it: a slug, a store tag or a manifest digest names an image.
	var buf bytes.Buffer
	res, err := archive.Export(ctx, a.Store, &buf, []string{"demo"}, archive.ExportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, img := range res.Images {
		fmt.Println("exported", img.Slug, "as", img.Name, "metadata:", img.Metadata)
	}

	// On the second host: import it.
	b := host(filepath.Join(tmp, "b"))
	in, err := b.Import(ctx, &buf, bottle.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, img := range in.Images {
		fmt.Println("imported", img.Slug, "format:", in.Format, "same digest:", img.Digest == res.Images[0].Digest)
	}
	// Output:
	// exported demo as docker.io/library/bot-bottle-committed-demo:latest metadata: true
	// imported demo format: oci same digest: true
}
