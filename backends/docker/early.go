package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/bot-bottle/bb/archive"
)

// earlyLayerName is the diff layer's file in an early load's archive.
const earlyLayerName = "diff/layer.tar"

// earlyLoad is a load into the daemon started while the snapshot's diff
// layer is being built: the layer's uncompressed tar goes into a
// docker-archive as the snapshot pipeline hashes and compresses it (the
// snapshot.LayerTee of the stream), so the daemon receives and spools it
// meanwhile and reads no gzip. A docker-archive entry needs its size in
// its header, so the load starts only with a planned size
// (plannedTarSize); the daemon reads manifest.json only once it has the
// whole archive, so the config and manifest.json come last, written by
// Load (finish) once the snapshot is stored. Whatever differs from the
// plan (the bottle changed meanwhile, another base, a failure on either
// side) abandons the early load: the archive is cut before its end, the
// daemon keeps nothing, and Load loads from the store as usual. The
// daemon checks the layer's diffID against the config's, and the image
// ID against the config digest: an image it loads is the stored
// snapshot.
type earlyLoad struct {
	log     *slog.Logger
	planned int64
	// base are the diffIDs of the base image the daemon has.
	base []string

	pw     *io.PipeWriter
	tw     *tar.Writer
	cancel context.CancelFunc
	done   chan error
	start  time.Time

	// Written by the snapshot pipeline (Write), then by Load (finish) or
	// Release, one after the other.
	n       int64
	started bool
	err     error
	over    sync.Once
	result  error
}

// startEarlyLoad starts the daemon's load of an archive whose diff layer
// has planned bytes.
func startEarlyLoad(ctx context.Context, c Client, log *slog.Logger, planned int64, base []string) *earlyLoad {
	lctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	e := &earlyLoad{log: log, planned: planned, base: base, pw: pw, tw: tar.NewWriter(pw), cancel: cancel, done: make(chan error, 1), start: time.Now()}
	go func() {
		resp, err := c.ImageLoad(lctx, pr, client.ImageLoadWithQuiet(true))
		if err == nil {
			err = readLoadMessages(resp)
			resp.Body.Close()
		}
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errors.New("the daemon's load is over"))
		}
		e.done <- err
	}()
	return e
}

// Write takes the next bytes of the layer's tar (snapshot.LayerTee). It
// never fails: the first problem abandons the early load.
func (e *earlyLoad) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	if !e.started {
		e.started = true
		if err := e.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: earlyLayerName, Size: e.planned, Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
			e.abandon(err)
			return len(p), nil
		}
	}
	if e.n+int64(len(p)) > e.planned {
		e.abandon(fmt.Errorf("the layer is larger than planned (%d bytes): the bottle changed while it was read", e.planned))
		return len(p), nil
	}
	if _, err := e.tw.Write(p); err != nil {
		e.abandon(err)
		return len(p), nil
	}
	e.n += int64(len(p))
	return len(p), nil
}

// abandon cuts the archive short: the daemon's load fails and keeps
// nothing.
func (e *earlyLoad) abandon(err error) {
	if e.err == nil {
		e.err = err
	}
	e.pw.CloseWithError(err)
	e.cancel()
}

// wait ends the early load and returns the daemon's verdict (nil: the
// image is loaded) or why it was abandoned.
func (e *earlyLoad) wait() error {
	e.over.Do(func() {
		derr := <-e.done
		e.cancel()
		if e.err != nil {
			e.result = e.err
		} else {
			e.result = derr
		}
	})
	return e.result
}

// finish writes the config and manifest.json of the stored snapshot im
// and waits for the daemon's load. An error means the daemon did not load
// the image: the caller loads it from the store.
func (e *earlyLoad) finish(im *storedImage, ref string) error {
	if e.err == nil {
		if err := e.check(im); err != nil {
			e.abandon(err)
		} else if err := e.writeEnd(im, ref); err != nil {
			e.abandon(err)
		} else {
			e.pw.Close()
		}
	}
	return e.wait()
}

// check makes sure the archive's layer is im's diff layer on the base the
// load was planned for.
func (e *earlyLoad) check(im *storedImage) error {
	ids := im.cfg.RootFS.DiffIDs
	if len(ids) != len(e.base)+1 {
		return fmt.Errorf("the snapshot has %d layers, the early load planned %d", len(ids), len(e.base)+1)
	}
	for i, b := range e.base {
		if ids[i].String() != b {
			return fmt.Errorf("the snapshot's layer %d is not the base image's", i)
		}
	}
	if e.n != e.planned {
		return fmt.Errorf("the layer has %d bytes, planned %d: the bottle changed while it was read", e.n, e.planned)
	}
	return nil
}

// writeEnd writes the config and manifest.json and closes the archive.
func (e *earlyLoad) writeEnd(im *storedImage, ref string) error {
	cfgName := im.man.Config.Digest.Hex + ".json"
	names := make([]string, len(im.cfg.RootFS.DiffIDs))
	for i, d := range im.cfg.RootFS.DiffIDs {
		names[i] = d.Hex + "/layer.tar"
	}
	names[len(names)-1] = earlyLayerName
	mb, err := json.Marshal([]archive.DockerManifest{{Config: cfgName, RepoTags: []string{ref}, Layers: names}})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{cfgName, im.cfgBytes}, {"manifest.json", mb}} {
		if err := e.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: int64(len(f.b)), Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := e.tw.Write(f.b); err != nil {
			return err
		}
	}
	return e.tw.Close()
}

// release abandons the early load if Load did not finish it, and waits
// until the daemon let go of it.
func (e *earlyLoad) release() {
	e.abandon(errors.New("the commit did not load the snapshot"))
	_ = e.wait()
}
