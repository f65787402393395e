package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
	"github.com/spf13/cobra"
)

func newServe(g *globals) *cobra.Command {
	var (
		opts         registry.Options
		htpasswd     string
		user         string
		passwordFile string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the local store as an OCI registry on 127.0.0.1",
		Long:  serveLong,
		Example: `  bb serve
  bb serve --addr 127.0.0.1:5000 --allow-push
  bb serve --addr 127.0.0.1:5000 --allow-push --allow-delete
  bb serve --addr 0.0.0.0:5443 --listen-any --htpasswd ./htpasswd --tls-cert cert.pem --tls-key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			creds, err := serveCredentials(htpasswd, user, passwordFile)
			if err != nil {
				return err
			}
			opts.Credentials = creds
			opts.Logger = g.logger(cmd.ErrOrStderr())
			s, err := g.openStore()
			if err != nil {
				return err
			}
			srv, err := registry.Start(ctx, s, opts)
			switch {
			case errors.Is(err, registry.ErrNotLoopback):
				return fmt.Errorf("refusing to listen on %s: not a loopback address; to serve other hosts add --listen-any and credentials (--htpasswd FILE, or --user NAME --password-file FILE)", opts.Addr)
			case errors.Is(err, registry.ErrNoCredentials):
				return fmt.Errorf("--listen-any needs credentials: --htpasswd FILE (htpasswd -B) or --user NAME --password-file FILE")
			case err != nil:
				return err
			}
			defer srv.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "serving %s at %s (%s); interrupt to stop\n", s.Root(), srv.URL(), serveMode(opts))
			if err := printServed(ctx, out, cmd.ErrOrStderr(), s, srv); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-srv.Done():
			}
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", registry.DefaultAddr, "listen address (port 0 picks a free port)")
	f.BoolVar(&opts.AllowPush, "allow-push", false, "accept pushes into the store")
	f.BoolVar(&opts.AllowDelete, "allow-delete", false, "accept DELETE of tags, manifests and unused blobs")
	f.BoolVar(&opts.AllowNonLoopback, "listen-any", false, "allow a non-loopback --addr (requires credentials)")
	f.StringVar(&htpasswd, "htpasswd", "", "require basic auth with the bcrypt entries of this htpasswd file")
	f.StringVar(&user, "user", "", "require basic auth as this user (with --password-file)")
	f.StringVar(&passwordFile, "password-file", "", "file whose first line is --user's password")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	f.StringVar(&opts.TLSKey, "tls-key", "", "PEM key of --tls-cert")
	return cmd
}

// serveLong is bb serve's help text.
const serveLong = `Serve bb's store as an OCI distribution registry, so that any registry
client on this host (docker, skopeo, crane, containerd, Apple's container,
smolvm pack) can pull snapshots from it:

  localhost:PORT/SLUG:latest   the slug's current snapshot
  localhost:PORT/SLUG:TIME     an earlier one (see bb list)

Clients pick plain HTTP for localhost on their own (skopeo needs
--src-tls-verify=false). Blobs are served from the store's files, so a
multi-GB layer takes no memory.

Names: any OCI repository name. A slug is its own repository; a nested
name maps onto the slug with each '/' as "___" (team/app:v1 is store tag
team___app-v1, and bb list shows slug team___app). A name whose slug would
be longer than 100 characters gets 404 NAME_UNKNOWN. Digests: sha256 and
sha512 (stored under blobs/sha512/); others get 400 DIGEST_INVALID. APIs:
pull (GET/HEAD of manifests and blobs, with Range), catalog, tag list,
referrers, and with the flags below push and content management.

The registry is read-only unless told otherwise:
  --allow-push    blob uploads (monolithic, chunked, streamed; mounts) and
                  manifest pushes into the store, by tag or by digest (with
                  ?tag= parameters). SLUG:latest replaces the
                  slug's current snapshot and, like a commit, gets a history
                  tag SLUG-<time>; SLUG:T becomes store tag SLUG-T. At 64
                  open uploads the longest-idle one is dropped; an upload
                  idle for 10 minutes, cancelled, or failing its digest check
                  is removed with its data.
  --allow-delete  DELETE of tags (the store tag goes, as with bb rm
                  SLUG-T), of manifests by digest (the repository's tags of
                  it go, and the manifest too when nothing else uses it) and
                  of blobs (removed at once, skipping bb gc's grace hour).
                  What a snapshot, an index or another repository still
                  uses is refused with 409 DENIED naming the tags that use
                  it. Other blobs are left for bb gc.

bb serve listens on loopback only. Without credentials, on Linux, it
accepts only connections from its own user and root: the store is
private, and every local user reaches loopback. To serve other hosts, give a
non-loopback --addr, --listen-any, and credentials: --htpasswd FILE
(bcrypt entries, made with htpasswd -B) or --user NAME --password-file
FILE; use --tls-cert and --tls-key for HTTPS.

It prints the address and the references it serves, then runs until
interrupted.`

// serveMode describes what the registry accepts, for its first line.
func serveMode(opts registry.Options) string {
	mode := "read-only"
	switch {
	case opts.AllowPush && opts.AllowDelete:
		mode = "push and delete allowed"
	case opts.AllowPush:
		mode = "push allowed"
	case opts.AllowDelete:
		mode = "read-only, delete allowed"
	}
	if opts.Credentials != nil {
		mode += ", basic auth"
	}
	return mode
}

// printServed lists the references srv serves, one a line.
func printServed(ctx context.Context, out, errOut io.Writer, s *oci.Store, srv *registry.Server) error {
	repos, err := registry.Repositories(ctx, s)
	if err != nil {
		return err
	}
	if len(repos) == 0 {
		fmt.Fprintln(errOut, "the store has no snapshots yet (bb commit makes one)")
	}
	for _, r := range repos {
		fmt.Fprintln(out, srv.Ref(r.Name, servedTag(r.Tags)))
	}
	return nil
}

// servedTag is the tag to print for a repository: latest when it has a
// current snapshot, else its newest history tag.
func servedTag(tags []string) string {
	for _, t := range tags {
		if t == "latest" {
			return t
		}
	}
	if len(tags) == 0 {
		return "latest"
	}
	return tags[len(tags)-1]
}

// serveCredentials reads --htpasswd or --user/--password-file.
func serveCredentials(htpasswd, user, passwordFile string) (map[string]string, error) {
	switch {
	case htpasswd != "" && (user != "" || passwordFile != ""):
		return nil, errors.New("give --htpasswd or --user with --password-file, not both")
	case htpasswd != "":
		f, err := os.Open(htpasswd)
		if err != nil {
			return nil, fmt.Errorf("--htpasswd: %w", err)
		}
		defer f.Close()
		creds, err := registry.ReadHtpasswd(f)
		if err != nil {
			return nil, fmt.Errorf("--htpasswd %s: %w", htpasswd, err)
		}
		return creds, nil
	case user != "" && passwordFile != "":
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return nil, fmt.Errorf("--password-file %s: the first line is empty", passwordFile)
		}
		h, err := registry.HashPassword(pw)
		if err != nil {
			return nil, err
		}
		return map[string]string{user: h}, nil
	case user != "" || passwordFile != "":
		return nil, errors.New("--user and --password-file go together")
	}
	return nil, nil
}
