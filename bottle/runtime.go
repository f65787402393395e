package bottle

import (
	"context"
	"errors"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// Backend names, as metadata.json spells them ("" means docker).
const (
	Docker         = "docker"
	MacosContainer = "macos-container"
	Smolmachines   = "smolmachines"
	Dir            = "dir"
)

// ErrNoBottle is returned when the runtime has no bottle of that slug.
var ErrNoBottle = errors.New("no such bottle")

// ErrNotRunning is returned when a commit needs a running bottle.
var ErrNotRunning = errors.New("bottle is not running")

// ErrRunning is returned when resume finds the bottle already running.
var ErrRunning = errors.New("bottle is already running")

// Info describes one bottle as its runtime sees it.
type Info struct {
	Slug    string `json:"slug"`
	Name    string `json:"name"`
	Backend string `json:"backend"`
	Running bool   `json:"running"`
	Image   string `json:"image,omitempty"`
}

// Name returns the runtime name of a bottle: bot-bottle-<slug>.
func Name(slug string) string { return "bot-bottle-" + slug }

// SlugOf returns the slug of a runtime name ("bot-bottle-x" or Docker's
// "/bot-bottle-x" -> "x"); ok is false for names that are not a bottle's
// (including bot-bottle-committed-* images).
func SlugOf(name string) (slug string, ok bool) {
	slug, ok = strings.CutPrefix(strings.TrimPrefix(name, "/"), "bot-bottle-")
	if !ok || strings.HasPrefix(slug, "committed-") || state.ValidSlug(slug) != nil {
		return "", false
	}
	return slug, true
}

// ScratchScript is the shell command every backend runs in a bottle it
// boots from a snapshot: snapshots leave out the contents of /tmp and
// /var/tmp, so they are recreated root:root 1777.
const ScratchScript = "mkdir -p /tmp /var/tmp && chown 0:0 /tmp /var/tmp && chmod 1777 /tmp /var/tmp"

// PrepareOptions tune how a runtime streams a bottle.
type PrepareOptions struct {
	// Pause freezes the bottle for the duration of the stream, for a
	// consistent snapshot (docker only; the bottle resumes afterwards).
	Pause bool
	// IncludeMounts keeps volumes and bind mounts in the snapshot.
	IncludeMounts bool
	// Full makes a single flattened layer even where the runtime could
	// build on its base image's layers.
	Full bool
	// Method selects how the root filesystem leaves the bottle
	// ("exec", "export", "cp"); "" is the runtime's default.
	Method string
	// Dir is the directory to snapshot (dir backend, bb commit
	// --from-dir). It becomes the bottle's recorded directory only once
	// the snapshot is stored (SourceRecorder).
	Dir string
	// KeepEnv keeps the bottle's runtime environment in the snapshot's
	// config instead of the base image's Env. Runtime environments often
	// carry tokens.
	KeepEnv bool
	// Previous is the config of the slug's current snapshot in the store
	// (nil if none), which a runtime that cannot read its bottle's image
	// config (smolvm) takes as the base: a resumed bottle's base image is
	// its last snapshot.
	Previous *v1.ConfigFile
	// Loading says that the commit loads the snapshot into the runtime
	// once it is built: a runtime may start that load while the snapshot
	// is still being built (see Snapshot.Prepared and Prepared.Release).
	Loading bool
}

// Prepared is what a runtime hands to the snapshot pipeline.
type Prepared struct {
	Source snapshot.Source
	Base   snapshot.Base
	// Excludes are extra paths to leave out (mount points).
	Excludes []string
	// CreatedBy describes the method, for the history entry.
	CreatedBy string
	// Info is the bottle as Prepare found it, set by a runtime that
	// inspects the bottle in Prepare (see SelfInspecting).
	Info *Info
	// Release, if set, is called once the commit is over, whether it
	// succeeded or not: it ends what Prepare started and Load did not
	// take over (an early load into the runtime).
	Release func()
}

// SelfInspecting is a runtime whose Prepare inspects the bottle itself,
// fails with ErrNotRunning when it does not run, and returns it in
// Prepared.Info: Commit then does not call Inspect first, so the bottle
// is inspected once.
type SelfInspecting interface {
	PrepareInspects()
}

// Snapshot is a stored image that a runtime is asked to load.
type Snapshot struct {
	Slug     string
	Store    *oci.Store
	Manifest v1.Descriptor
	// RawManifest and RawConfig are the snapshot's manifest and config
	// as the commit just built them; nil means the runtime reads them
	// from the store (a resume, an import).
	RawManifest, RawConfig []byte
	// Prepared is what the runtime's Prepare returned for the commit that
	// built the snapshot (nil otherwise): a runtime that started loading
	// the snapshot while it was built finishes that load.
	Prepared *Prepared
}

// ResumeOptions tune Boot.
type ResumeOptions struct {
	// Replace removes a running bottle of the same name first.
	Replace bool
	// Dir is where the dir backend extracts the snapshot (default
	// <home>/state/<slug>/rootfs).
	Dir string
	// Settle is how long the runtime watches the booted bottle before it
	// calls the resume a success (see WatchStart); 0 is the runtime's
	// setting, negative skips the check.
	Settle time.Duration
	// Devices lets the dir backend create device nodes; without it
	// they are skipped and reported through Warn.
	Devices bool
	// Warn receives one line per thing the runtime skipped.
	Warn func(msg string)
}

// SourceRecorder is a runtime whose bottles are directories this host's
// user names (dir): after a commit with PrepareOptions.Dir succeeds, the
// directory is recorded as the bottle's, and only then.
type SourceRecorder interface {
	RecordSource(slug, dir string) error
}

// ImageIdentifier is a runtime that tells which image a committed
// reference names now (Docker: the image ID; "" when there is none). bb
// records it with each load, so that a resume notices another tool that
// replaced the image under the same name (docker commit) without
// rewriting committed-image, and loads nothing over it.
type ImageIdentifier interface {
	ImageID(ctx context.Context, committed string) (string, error)
}

// Runtime is what bottle needs from a backend.
type Runtime interface {
	// Name is the backend's name (docker, macos-container, smolmachines, dir).
	Name() string
	// List returns the runtime's bottles (bot-bottle-* containers or VMs).
	List(ctx context.Context) ([]Info, error)
	// Inspect returns one bottle, or ErrNoBottle.
	Inspect(ctx context.Context, slug string) (*Info, error)
	// Prepare sets up the stream of a bottle's root filesystem.
	Prepare(ctx context.Context, slug string, opts PrepareOptions) (*Prepared, error)
	// Load makes a snapshot bootable by the runtime and returns what
	// committed-image records: an image reference or an artifact path.
	Load(ctx context.Context, snap Snapshot) (string, error)
	// Has reports whether the runtime still has what Load returned.
	Has(ctx context.Context, committed string) (bool, error)
	// Boot starts the bottle from committed. snap names the slug's
	// snapshot in the store; its Manifest is zero if the store has none.
	Boot(ctx context.Context, snap Snapshot, committed string, opts ResumeOptions) error
}
