package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// Load implements bottle.Runtime: it loads the snapshot into the daemon
// as bot-bottle-committed-<slug>:latest. If the daemon already has the
// image (its ID is the snapshot's config digest) it is only tagged. A
// commit that started loading the snapshot while it was built (see
// earlyLoad) finishes that load. Otherwise a docker-archive is streamed
// into the daemon's load (gzip layers as stored, see sentCompressed),
// leaving out the layers whose chain of diffIDs the daemon has. The
// previous image of that name is removed if nothing else uses it.
// A daemon with containerd's image store (containerdStore) gets every
// layer and no early load, and its image is checked by isSnapshot.
func (r *Runtime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	c, err := r.api()
	if err != nil {
		return "", err
	}
	ref := state.CommittedRef(snap.Slug)
	im, err := readImage(ctx, snap)
	if err != nil {
		return "", err
	}
	want := im.man.Config.Digest.String()
	containerd := r.containerdStore(ctx, c)
	prevID := ""
	var prev *image.InspectResponse
	if pi, err := c.ImageInspect(ctx, ref); err == nil {
		prevID, prev = pi.ID, &pi
		if isSnapshot(pi, im, containerd) {
			return ref, nil
		}
	}
	// The containerd store finds an image by its manifest's digest, never
	// by its config's: there the snapshot is loaded again unless ref has it.
	if !containerd {
		if ok, err := r.tagLoaded(ctx, c, want, ref, prevID); ok || err != nil {
			return ref, err
		}
	}
	start := time.Now()
	if e := earlyOf(snap); e != nil && !containerd {
		if err := e.finish(im, ref); err == nil {
			return r.loaded(ctx, c, im, ref, prevID, len(im.man.Layers)-1, "uncompressed layer, sent while it was built", e.start)
		} else if ctx.Err() == nil {
			r.log().Info("loading the snapshot from the store (the load started while the layer was built did not work)", "image", ref, "err", err)
		}
		start = time.Now()
	}
	have := 0
	if !containerd {
		// The containerd store's import needs every layer in the archive.
		have = r.daemonLayers(ctx, c, im, prev)
	}
	mode := "gzip layers"
	err = r.load(ctx, c, snap.Store, im, have, ref, true)
	if err != nil && have > 0 && strings.Contains(err.Error(), "no such file") {
		// The image that had the base layers went away meanwhile.
		r.log().Info("the daemon lost the base layers; loading the whole image", "image", ref)
		have = 0
		err = r.load(ctx, c, snap.Store, im, 0, ref, true)
	}
	var refused *loadRefusedError
	if errors.As(err, &refused) && ctx.Err() == nil {
		r.log().Info("the daemon refused the compressed layers; sending them uncompressed", "image", ref, "err", err)
		mode = "uncompressed layers"
		err = r.load(ctx, c, snap.Store, im, have, ref, false)
	}
	if err != nil {
		return "", err
	}
	return r.loaded(ctx, c, im, ref, prevID, have, mode, start)
}

// tagLoaded tags the daemon's image want (a config digest, the image
// ID on the graph-driver store) as ref if the daemon has it, and drops
// the image ref named before (prevID).
func (r *Runtime) tagLoaded(ctx context.Context, c Client, want, ref, prevID string) (bool, error) {
	if _, err := c.ImageInspect(ctx, want); err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("inspecting image %s: %w", want, err)
	}
	if err := c.ImageTag(ctx, want, ref); err != nil {
		return false, fmt.Errorf("tagging image %s as %s: %w", want, ref, err)
	}
	r.dropImage(ctx, c, prevID)
	return true, nil
}

// earlyOf returns the early load of the commit that built snap, if any.
func earlyOf(snap bottle.Snapshot) *earlyLoad {
	if snap.Prepared == nil {
		return nil
	}
	if s, ok := snap.Prepared.Source.(*source); ok {
		return s.early
	}
	return nil
}

// loaded checks that the daemon's image of ref is im, and drops the
// image ref named before (prevID).
func (r *Runtime) loaded(ctx context.Context, c Client, im *storedImage, ref, prevID string, have int, mode string, start time.Time) (string, error) {
	want := im.man.Config.Digest.String()
	got, err := c.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspecting the loaded image %s: %w", ref, err)
	}
	if !isSnapshot(got, im, r.containerdStore(ctx, c)) {
		return "", fmt.Errorf("the daemon loaded %s as image %s, which is not the snapshot (config %s)", ref, got.ID, want)
	}
	r.log().Info("loaded the snapshot into Docker", "image", ref, "layers", len(im.man.Layers), "layers_sent", len(im.man.Layers)-have, "sent_as", mode, "took", time.Since(start).Round(time.Millisecond))
	r.dropImage(ctx, c, prevID)
	return ref, nil
}

// storedImage is a snapshot's manifest and config.
type storedImage struct {
	man       *v1.Manifest
	cfg       *v1.ConfigFile
	cfgBytes  []byte
	baseImage string
}

// readImage parses the snapshot's manifest and config: those the commit
// just built, else those in the store.
func readImage(ctx context.Context, snap bottle.Snapshot) (*storedImage, error) {
	desc, s := snap.Manifest, snap.Store
	mb := snap.RawManifest
	if mb == nil {
		var err error
		if mb, err = s.ReadBlob(ctx, desc.Digest, oci.MaxManifestSize); err != nil {
			return nil, err
		}
	} else if h, _, err := v1.SHA256(bytes.NewReader(mb)); err != nil || h != desc.Digest {
		return nil, fmt.Errorf("the manifest handed over is not %s", desc.Digest)
	}
	man, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
	}
	cb := snap.RawConfig
	if cb == nil {
		if cb, err = s.ReadBlob(ctx, man.Config.Digest, oci.MaxConfigSize); err != nil {
			return nil, err
		}
	} else if h, _, err := v1.SHA256(bytes.NewReader(cb)); err != nil || h != man.Config.Digest {
		return nil, fmt.Errorf("the config handed over is not %s", man.Config.Digest)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", man.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, fmt.Errorf("image %s has %d layers but %d diffIDs", desc.Digest, len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	return &storedImage{man: man, cfg: cfg, cfgBytes: cb, baseImage: man.Annotations[oci.BaseImageAnnotation]}, nil
}

// daemonLayers returns how many of the image's first layers the daemon
// has, judging by the images most likely to share them: the snapshot's
// base image and the previous snapshot (prev, already inspected).
func (r *Runtime) daemonLayers(ctx context.Context, c Client, im *storedImage, prev *image.InspectResponse) int {
	best := 0
	cands := []*image.InspectResponse{prev}
	if im.baseImage != "" {
		if ii, err := c.ImageInspect(ctx, im.baseImage); err == nil {
			cands = append(cands, &ii)
		}
	}
	for _, ii := range cands {
		if ii == nil {
			continue
		}
		n := 0
		for n < len(ii.RootFS.Layers) && n < len(im.cfg.RootFS.DiffIDs) && ii.RootFS.Layers[n] == im.cfg.RootFS.DiffIDs[n].String() {
			n++
		}
		best = max(best, n)
	}
	return best
}

// tarSizes returns the uncompressed sizes of layers from..end that are
// sent uncompressed, as the store knows them (layer.Write counted them)
// or by decompressing the layer once (and telling the store).
func (r *Runtime) tarSizes(ctx context.Context, s *oci.Store, im *storedImage, from int, compressed bool) (map[int]int64, error) {
	sizes := map[int]int64{}
	for i := from; i < len(im.man.Layers); i++ {
		desc := im.man.Layers[i]
		if compressed && sentCompressed(desc.MediaType) {
			continue
		}
		d := im.cfg.RootFS.DiffIDs[i]
		if n, ok := s.TarSize(d, desc.Digest); ok {
			sizes[i] = n
			continue
		}
		n, err := archive.Uncompress(ctx, s, desc, d, io.Discard)
		if err != nil {
			return nil, err
		}
		sizes[i] = n
		s.RecordLayer(oci.StoredLayer{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType, DiffID: d, TarSize: n})
	}
	return sizes, nil
}

// sentCompressed says whether a layer of media type mt goes to the
// daemon as its stored blob: the daemon's load decompresses a gzip
// layer.tar itself and checks its diffID, so bb neither decompresses
// the layer nor needs its uncompressed size, and the daemon receives
// and spools fewer bytes.
func sentCompressed(mt types.MediaType) bool {
	return mt == types.OCILayer || mt == types.DockerLayer
}

// loadRefusedError is a failure the daemon reported in its load output.
type loadRefusedError struct{ err error }

func (e *loadRefusedError) Error() string { return e.err.Error() }
func (e *loadRefusedError) Unwrap() error { return e.err }

// load streams the docker-archive of im's layers have.. into ImageLoad
// and reads its messages; with compressed, gzip layers are sent as
// stored.
func (r *Runtime) load(ctx context.Context, c Client, s *oci.Store, im *storedImage, have int, ref string, compressed bool) error {
	sizes, err := r.tarSizes(ctx, s, im, have, compressed)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	werrc := make(chan error, 1)
	go func() {
		err := writeArchive(ctx, pw, s, im, sizes, have, ref, compressed)
		pw.CloseWithError(err)
		werrc <- err
	}()
	resp, err := c.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		if werr := <-werrc; werr != nil && !errors.Is(werr, io.ErrClosedPipe) && !errors.Is(werr, err) {
			return fmt.Errorf("loading %s into Docker: %w (while sending: %v)", ref, err, werr)
		}
		return fmt.Errorf("loading %s into Docker: %w", ref, err)
	}
	defer resp.Body.Close()
	merr := readLoadMessages(resp)
	if merr != nil {
		merr = &loadRefusedError{err: merr}
	}
	pr.CloseWithError(errors.New("the daemon finished the load"))
	werr := <-werrc
	switch {
	case merr != nil && werr != nil:
		return fmt.Errorf("loading %s into Docker: %w (while sending: %v)", ref, merr, werr)
	case merr != nil:
		return fmt.Errorf("loading %s into Docker: %w", ref, merr)
	case werr != nil:
		return fmt.Errorf("loading %s into Docker: sending the image: %w", ref, werr)
	}
	return nil
}

// loadMessage is one message of the load's JSON stream.
type loadMessage struct {
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// maxLoadOutput bounds what is read of the load's messages.
const maxLoadOutput = 16 << 20

// readLoadMessages reads the load's output to its end and returns the
// first error it reports: the daemon answers 200 and puts failures in
// the stream.
func readLoadMessages(resp image.LoadResponse) error {
	body := io.LimitReader(resp.Body, maxLoadOutput)
	if !resp.JSON {
		b, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("reading the daemon's answer: %w", err)
		}
		if s := strings.TrimSpace(string(b)); strings.Contains(strings.ToLower(s), "error") {
			return errors.New(s)
		}
		return nil
	}
	dec := json.NewDecoder(body)
	for {
		var m loadMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the daemon's answer: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return fmt.Errorf("the daemon refused the image: %s", m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return fmt.Errorf("the daemon refused the image: %s", m.Error)
		}
		// The containerd store keeps an image it could not unpack and
		// says so in the stream only.
		if strings.HasPrefix(m.Stream, "Error unpacking image") {
			return fmt.Errorf("the daemon could not unpack the image: %s", strings.TrimSpace(m.Stream))
		}
	}
}

// writeArchive writes a docker-archive of im through archive.WriteDocker:
// layers have.. from the store, as stored (gzip, with compressed) or
// decompressed (the daemon has the first have layers, so their files are
// left out).
func writeArchive(ctx context.Context, w io.Writer, s *oci.Store, im *storedImage, sizes map[int]int64, have int, ref string, compressed bool) error {
	img := archive.DockerImage{Config: im.cfgBytes, ConfigDigest: im.man.Config.Digest, RepoTags: []string{ref}, Skip: have}
	for i, l := range im.man.Layers {
		img.Layers = append(img.Layers, archive.DockerLayer{
			DiffID: im.cfg.RootFS.DiffIDs[i], Blob: l,
			Uncompressed: !(compressed && sentCompressed(l.MediaType)), Size: sizes[i],
		})
	}
	return archive.WriteDocker(ctx, w, s, img)
}

// dropImage removes the image that carried the committed reference
// before, if no tag and no container uses it any more.
func (r *Runtime) dropImage(ctx context.Context, c Client, id string) {
	if id == "" {
		return
	}
	ii, err := c.ImageInspect(ctx, id)
	if err != nil || len(ii.RepoTags) > 0 {
		return
	}
	if _, err := c.ImageRemove(ctx, id, image.RemoveOptions{PruneChildren: true}); err != nil {
		r.log().Debug("keeping the previous snapshot image", "image", id, "err", err)
	}
}
