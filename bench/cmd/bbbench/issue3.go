package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// snap is the snapshot issue 3's steps move around.
type snap struct {
	Home     string
	Store    string
	Tag      string
	Manifest v1.Descriptor
	// Blobs are the manifest, config and layers, as store files.
	Blobs []blobFile
	Bytes int64
	// Layout is a one-image OCI layout of hardlinks to the store's files
	// (what crane push and skopeo read).
	Layout string
	// DockerImage is the same snapshot in dockerd (for docker save).
	DockerImage string
	How         string
}

type blobFile struct {
	Digest v1.Hash
	Size   int64
	Path   string
}

// issue3: bb export vs docker save vs cat; bb push vs crane, skopeo and
// curl; pulls from bb serve vs docker-registry.
func (e *benchEnv) issue3(ctx context.Context) []*step {
	b := e.largest()
	if b == nil {
		return nil
	}
	sn, err := e.makeSnap(ctx, b)
	if err != nil {
		return []*step{{ID: "i3-setup", Issue: 3, Group: "setup", Name: "snapshot for export/push/serve", Skip: err.Error()}}
	}
	e.note("issue 3 snapshot: %s; %d blobs, %s", sn.How, len(sn.Blobs), human(sn.Bytes))
	var steps []*step
	steps = append(steps, e.exportSteps(sn)...)
	steps = append(steps, e.pushSteps(ctx, sn)...)
	steps = append(steps, e.pullSteps(ctx, sn)...)
	return steps
}

// makeSnap commits the bench bottle into a store of its own, once.
func (e *benchEnv) makeSnap(ctx context.Context, b *bottle) (*snap, error) {
	sn := &snap{Home: filepath.Join(e.cfg.Work, "home-i3"), Tag: b.Slug}
	sn.Store = filepath.Join(sn.Home, "oci")
	e.onCleanup(func() { _ = os.RemoveAll(sn.Home) })
	if e.dockerBackend == "" {
		logf("issue 3 setup: bb commit %s (incremental, loaded into dockerd)", b.Slug)
		if _, err := measure(ctx, nil, e.cfg.BB, "--home", sn.Home, "commit", b.Slug); err != nil {
			return nil, err
		}
		// A tag of its own: issue 2's steps remove bot-bottle-committed-SLUG.
		sn.DockerImage = "bb-bench-i3:latest"
		committed := "bot-bottle-committed-" + b.Slug + ":latest"
		e.onCleanup(func() { _, _ = quiet(context.Background(), "docker", "rmi", committed) })
		if _, err := quiet(ctx, "docker", "tag", committed, sn.DockerImage); err != nil {
			return nil, err
		}
		sn.How = "bb commit " + b.Slug + " (Docker backend, base layers + diff); docker save of the image bb loaded"
		e.onCleanup(func() { _, _ = quiet(context.Background(), "docker", "rmi", "-f", sn.DockerImage) })
	} else {
		logf("issue 3 setup: bb commit --from-dir %s --slug %s (one layer)", b.Merged, b.Slug)
		if _, err := measure(ctx, nil, e.cfg.BB, "--home", sn.Home, "commit", "--from-dir", b.Merged, "--slug", b.Slug, "--no-load"); err != nil {
			return nil, err
		}
		sn.DockerImage = "bb-bench-i3:latest"
		logf("issue 3 setup: docker commit %s %s (for docker save)", b.Name, sn.DockerImage)
		if _, err := quiet(ctx, "docker", "commit", b.Name, sn.DockerImage); err != nil {
			return nil, err
		}
		sn.How = "bb commit --from-dir of the bottle's merged directory (one layer; bb's Docker backend is not in this bb yet); docker save of a docker commit of the same bottle"
		e.onCleanup(func() { _, _ = quiet(context.Background(), "docker", "rmi", "-f", sn.DockerImage) })
	}
	store, err := oci.Open(sn.Store)
	if err != nil {
		return nil, err
	}
	desc, err := store.Resolve(ctx, sn.Tag)
	if err != nil {
		return nil, err
	}
	sn.Manifest = desc
	raw, err := store.ReadBlob(ctx, desc.Digest, 4<<20)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	add := func(d v1.Hash, n int64) {
		sn.Blobs = append(sn.Blobs, blobFile{Digest: d, Size: n, Path: store.BlobPath(d)})
		sn.Bytes += n
	}
	add(m.Config.Digest, m.Config.Size)
	for _, l := range m.Layers {
		add(l.Digest, l.Size)
	}
	add(desc.Digest, desc.Size)

	// A one-image layout of hardlinks, for crane and skopeo.
	sn.Layout = filepath.Join(e.cfg.Work, "layout-i3")
	if err := os.MkdirAll(filepath.Join(sn.Layout, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	for _, bl := range sn.Blobs {
		if err := os.Link(bl.Path, filepath.Join(sn.Layout, "blobs", "sha256", bl.Digest.Hex)); err != nil && !os.IsExist(err) {
			return nil, err
		}
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json",
		Manifests: []v1.Descriptor{{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
			Annotations: map[string]string{oci.RefNameAnnotation: sn.Tag}}}}
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(sn.Layout, "index.json"), ib, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(sn.Layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	return sn, nil
}

func (e *benchEnv) exportSteps(sn *snap) []*step {
	group := "export to a file (" + human(sn.Bytes) + " snapshot)"
	out := filepath.Join(e.cfg.Work, "export-i3.tar")
	rm := func(context.Context) error { return os.RemoveAll(out) }
	argv := []string{e.cfg.BB, "--home", sn.Home, "export", sn.Tag, "-o", out}
	var paths []string
	for _, bl := range sn.Blobs {
		paths = append(paths, bl.Path)
	}
	cat := "cat " + shJoin(paths) + " > " + shQuote(out)
	return []*step{
		{
			ID: "bb-export", Issue: 3, Group: group, Tool: "bb", Name: "bb export -o file", Ref: true,
			Cmd: shJoin(argv), Basis: sn.Bytes, Skip: e.needBB("export"),
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, nil, argv...)
				if err != nil {
					return sample{}, err
				}
				r.Out = fileSize(out)
				return r.sample, nil
			},
			after: rm,
		},
		{
			ID: "docker-save", Issue: 3, Group: group, Tool: "docker save", Daemon: true,
			Name: "docker save -o file (" + sn.DockerImage + ", uncompressed layers)",
			Cmd:  "docker save -o " + shQuote(out) + " " + sn.DockerImage,
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, nil, "docker", "save", "-o", out, sn.DockerImage)
				if err != nil {
					return sample{}, err
				}
				r.Out = fileSize(out)
				return r.sample, nil
			},
			after: rm,
		},
		{
			ID: "cat-blobs", Issue: 3, Group: group, Tool: "cat", Basis: sn.Bytes,
			Name: "cat of the same blobs > file (the floor)", Cmd: "cat BLOBS... > " + shQuote(out),
			run: shellRun(cat, out), after: rm,
		},
		{
			// bb export syncs its output before renaming it into place.
			ID: "cat-sync-blobs", Issue: 3, Group: group, Tool: "cat", Basis: sn.Bytes,
			Name: "cat of the same blobs > file; sync file (the floor, durable)", Cmd: "cat BLOBS... > " + shQuote(out) + " && sync " + shQuote(out),
			run: shellRun(cat+" && sync "+shQuote(out), out), after: rm,
		},
	}
}

// needBB is the skip reason for a bb command this bb does not have.
func (e *benchEnv) needBB(cmd string) string {
	if e.hasBB(cmd) {
		return ""
	}
	return "bb " + cmd + " is not in this bb yet"
}

func findCrane() string {
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	if gp, err := quiet(context.Background(), "go", "env", "GOPATH"); err == nil {
		p := filepath.Join(gp, "bin", "crane")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

const craneHint = "crane not found: go install github.com/google/go-containerregistry/cmd/crane@v0.22.1"

func (e *benchEnv) pushSteps(ctx context.Context, sn *snap) []*step {
	group := "push to docker-registry on 127.0.0.1 (" + human(sn.Bytes) + ", empty registry each run)"
	var reg *registry
	regDir := filepath.Join(e.cfg.Work, "registry-push")
	fresh := func(ctx context.Context) error {
		reg.Stop()
		var err error
		reg, err = startRegistry(ctx, regDir)
		return err
	}
	stop := func(context.Context) error { reg.Stop(); reg = nil; return nil }
	e.onCleanup(func() { reg.Stop() })
	regSkip := ""
	if _, err := os.Stat(registryBinary); err != nil {
		regSkip = registryBinary + " not installed (apt-get install docker-registry)"
	}
	skipOr := func(reasons ...string) string {
		for _, r := range reasons {
			if r != "" {
				return r
			}
		}
		return ""
	}
	crane := findCrane()
	craneSkip := ""
	if crane == "" {
		craneSkip = craneHint
	}
	ref := func(repo string) string { return reg.Addr + "/" + repo + ":latest" }
	cmdRun := func(argvf func() []string) func(context.Context) (sample, error) {
		return func(ctx context.Context) (sample, error) {
			r, err := measure(ctx, nil, argvf()...)
			if err != nil {
				return sample{}, err
			}
			r.Out = sn.Bytes
			return r.sample, nil
		}
	}
	// curl: each blob monolithically (POST, then PUT with the digest).
	curlScript := func() string {
		var s strings.Builder
		s.WriteString("set -e\n")
		for _, bl := range sn.Blobs {
			fmt.Fprintf(&s, "loc=$(curl -fsS -X POST -o /dev/null -w '%%header{location}' http://%s/v2/curl/blobs/uploads/)\n", reg.Addr)
			fmt.Fprintf(&s, "case $loc in http*) ;; *) loc=http://%s$loc ;; esac\n", reg.Addr)
			fmt.Fprintf(&s, "curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -T %s \"$loc&digest=%s\" -o /dev/null\n", shQuote(bl.Path), bl.Digest)
		}
		return s.String()
	}
	return []*step{
		{
			ID: "bb-push", Issue: 3, Group: group, Tool: "bb", Name: "bb push", Ref: true, Basis: sn.Bytes,
			Cmd:    e.cfg.BB + " --home " + sn.Home + " push " + sn.Tag + " 127.0.0.1:PORT/bb:latest",
			Skip:   skipOr(e.needBB("push"), regSkip),
			before: fresh, after: stop,
			run: cmdRun(func() []string { return []string{e.cfg.BB, "--home", sn.Home, "push", sn.Tag, ref("bb")} }),
		},
		{
			ID: "crane-push", Issue: 3, Group: group, Tool: "crane", Name: "crane push (OCI layout)", Basis: sn.Bytes,
			Cmd:    "crane push --insecure " + sn.Layout + " 127.0.0.1:PORT/crane:latest",
			Skip:   skipOr(craneSkip, regSkip),
			before: fresh, after: stop,
			run: cmdRun(func() []string { return []string{crane, "push", "--insecure", sn.Layout, ref("crane")} }),
		},
		{
			ID: "skopeo-push", Issue: 3, Group: group, Tool: "skopeo", Name: "skopeo copy oci: → docker://", Basis: sn.Bytes,
			Cmd:    "skopeo copy --dest-tls-verify=false oci:" + sn.Layout + ":" + sn.Tag + " docker://127.0.0.1:PORT/skopeo:latest",
			Skip:   skipOr(lookSkip("skopeo"), regSkip),
			before: fresh, after: stop,
			run: cmdRun(func() []string {
				return []string{"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:" + sn.Layout + ":" + sn.Tag, "docker://" + ref("skopeo")}
			}),
		},
		{
			ID: "curl-push", Issue: 3, Group: group, Tool: "curl", Name: "curl -T of the same blobs (monolithic PUT; the floor)", Basis: sn.Bytes,
			Cmd:    "per blob: curl -X POST .../blobs/uploads/; curl -T BLOB -X PUT LOCATION&digest=...",
			Skip:   skipOr(lookSkip("curl"), regSkip),
			before: fresh, after: stop,
			run: func(ctx context.Context) (sample, error) {
				r, err := shell(ctx, nil, curlScript())
				if err != nil {
					return sample{}, err
				}
				r.Out = sn.Bytes
				return r.sample, nil
			},
		},
	}
}

func lookSkip(tool string) string {
	if _, err := exec.LookPath(tool); err != nil {
		return tool + " not installed"
	}
	return ""
}

// server is a running bb serve.
type server struct {
	cmd   *exec.Cmd
	Ref   string // a reference it serves for the snapshot
	mu    sync.Mutex
	lines []string
}

var refRE = regexp.MustCompile(`(?:127\.0\.0\.1|localhost|\[::1\]):\d+/[A-Za-z0-9._/-]+(?::[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})?`)

// startServe starts bb serve over the snapshot's store and waits for it to
// print the reference of the snapshot.
func (e *benchEnv) startServe(ctx context.Context, sn *snap) (*server, error) {
	s := &server{}
	s.cmd = exec.Command(e.cfg.BB, "--home", sn.Home, "serve")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		var refs []string
		for _, l := range s.lines {
			refs = append(refs, refRE.FindAllString(l, -1)...)
		}
		s.mu.Unlock()
		for _, r := range refs {
			repo := r[strings.Index(r, "/")+1:]
			if name, _, _ := strings.Cut(strings.Split(repo, "@")[0], ":"); strings.HasSuffix(name, sn.Tag) {
				if !strings.ContainsAny(repo, ":@") {
					r += "@" + sn.Manifest.Digest.String()
				}
				s.Ref = r
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, fmt.Errorf("bb serve printed no reference for %s within 15 s: %s", sn.Tag, lastLines(strings.Join(s.lines, "\n"), 5))
}

// memKiB reads VmHWM and VmRSS of the server process.
func (s *server) memKiB() (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmHWM:":
				hwm = n
			case "VmRSS:":
				rss = n
			}
		}
	}
	return hwm, rss
}

func (s *server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (e *benchEnv) pullSteps(ctx context.Context, sn *snap) []*step {
	group := "pull " + human(sn.Bytes) + ": bb serve vs docker-registry, same clients"
	var steps []*step
	crane := findCrane()
	// docker-registry holding the same image, pushed once, untimed.
	var reg *registry
	var regRef string
	regErr := lookSkip("skopeo")
	if regErr == "" {
		var err error
		reg, err = startRegistry(ctx, filepath.Join(e.cfg.Work, "registry-pull"))
		if err != nil {
			regErr = err.Error()
		} else {
			e.onCleanup(reg.Stop)
			regRef = reg.Addr + "/bench:latest"
			if _, err := quiet(ctx, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+sn.Layout+":"+sn.Tag, "docker://"+regRef); err != nil {
				regErr = err.Error()
			}
		}
	}
	serveErr := e.needBB("serve")
	var srv *server
	if serveErr == "" {
		var err error
		if srv, err = e.startServe(ctx, sn); err != nil {
			serveErr = err.Error()
		} else {
			e.onCleanup(srv.Stop)
			idle, _ := srv.memKiB()
			e.note("bb serve: serving %s; peak RSS before any pull %s", srv.Ref, mib(idle))
		}
	}
	out := filepath.Join(e.cfg.Work, "pull-i3")
	rm := func(context.Context) error { return os.RemoveAll(out) }
	type source struct {
		id, label, skip string
		ref             func() string
		ref0            bool
	}
	sources := []source{
		{"serve", "bb serve", serveErr, func() string { return srv.Ref }, true},
		{"registry", "docker-registry", regErr, func() string { return regRef }, false},
	}
	for _, src := range sources {
		src := src
		steps = append(steps, &step{
			ID: "skopeo-pull-" + src.id, Issue: 3, Group: group, Tool: "skopeo", Basis: sn.Bytes, Ref: src.ref0,
			Name: "skopeo copy docker:// → oci: from " + src.label,
			Cmd:  "skopeo copy --src-tls-verify=false docker://REF oci:DIR:x", Skip: src.skip,
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, nil, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+src.ref(), "oci:"+out+":x")
				if err != nil {
					return sample{}, err
				}
				r.Out = dirSize(out)
				return r.sample, nil
			},
			after: rm,
		})
		craneSkip := src.skip
		if crane == "" {
			craneSkip = craneHint
		}
		steps = append(steps, &step{
			ID: "crane-pull-" + src.id, Issue: 3, Group: group, Tool: "crane", Basis: sn.Bytes,
			Name: "crane pull --format oci from " + src.label,
			Cmd:  "crane pull --insecure --format oci REF DIR", Skip: craneSkip,
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, nil, crane, "pull", "--insecure", "--format", "oci", src.ref(), out)
				if err != nil {
					return sample{}, err
				}
				r.Out = dirSize(out)
				return r.sample, nil
			},
			after: rm,
		})
		steps = append(steps, &step{
			ID: "curl-pull-" + src.id, Issue: 3, Group: group, Tool: "curl", Basis: sn.Bytes,
			Name: "curl GET of the blobs > /dev/null from " + src.label,
			Cmd:  "per blob: curl -o /dev/null http://HOST/v2/REPO/blobs/DIGEST (the manifest from /manifests/)", Skip: src.skip,
			run: func(ctx context.Context) (sample, error) {
				ref := src.ref()
				host, repo, _ := strings.Cut(ref, "/")
				repo = strings.Split(strings.Split(repo, "@")[0], ":")[0]
				var s strings.Builder
				s.WriteString("set -e\n")
				for _, bl := range sn.Blobs {
					if bl.Digest == sn.Manifest.Digest {
						fmt.Fprintf(&s, "curl -fsS -o /dev/null -H 'Accept: %s' http://%s/v2/%s/manifests/%s\n", sn.Manifest.MediaType, host, repo, bl.Digest)
						continue
					}
					fmt.Fprintf(&s, "curl -fsS -o /dev/null http://%s/v2/%s/blobs/%s\n", host, repo, bl.Digest)
				}
				r, err := shell(ctx, nil, s.String())
				if err != nil {
					return sample{}, err
				}
				r.Out = sn.Bytes
				return r.sample, nil
			},
		})
	}
	var hwms []string
	steps = append(steps, &step{
		ID: "serve-rss", Issue: 3, Group: group, Tool: "bb", Name: "bb serve process (peak RSS after this round's pulls)",
		Cmd: e.cfg.BB + " --home " + sn.Home + " serve", Skip: serveErr, RSSOnly: true,
		run: func(context.Context) (sample, error) {
			hwm, rss := srv.memKiB()
			hwms = append(hwms, mib(hwm))
			steps[len(steps)-1].Note = "VmHWM after each round: " + strings.Join(hwms, ", ") + "; VmRSS now " + mib(rss)
			return sample{RSSKiB: hwm}, nil
		},
	})
	return steps
}
