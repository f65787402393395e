package remote_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/testregistry"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/remote"
)

// Credentials from a docker credential helper (the docker-credential-*
// protocol: the registry on stdin, JSON on stdout), as docker and crane
// use them.
func TestCredentialHelper(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{Auth: true})
	s := makeSnapshot(t, "helped", 50<<10, 9)
	bin := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' \"$server\"\n", reg.Username, reg.Password)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-bbtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"credHelpers":{"`+reg.Addr+`":"bbtest"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := reg.Repo("helped")
	if _, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{CAFile: reg.CAFile}); err != nil {
		t.Fatal(err)
	}
	checkPulled(t, ref, s, remote.Options{CAFile: reg.CAFile})
}

// SSL_CERT_FILE replaces the system roots; Go reads it once per process,
// so the push runs in a child process.
func TestSSLCertFile(t *testing.T) {
	if os.Getenv("BB_TEST_CHILD_PUSH") != "" {
		return
	}
	reg := testregistry.Start(t, testregistry.Options{Auth: true})
	s := makeSnapshot(t, "certs", 20<<10, 10)
	cfg := t.TempDir()
	reg.DockerConfig(cfg, "")
	t.Setenv("DOCKER_CONFIG", cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildPush$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BB_TEST_CHILD_PUSH=1", "SSL_CERT_FILE="+reg.CAFile, "DOCKER_CONFIG="+cfg,
		"BB_TEST_STORE="+s.store.Root(), "BB_TEST_DIGEST="+s.desc.Digest.String(), "BB_TEST_REF="+reg.Repo("certs"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pushed") {
		t.Fatalf("child push with SSL_CERT_FILE: %v\n%s", err, out)
	}
	checkPulled(t, reg.Repo("certs"), s, remote.Options{CAFile: reg.CAFile})
}

// TestChildPush is TestSSLCertFile's child process.
func TestChildPush(t *testing.T) {
	if os.Getenv("BB_TEST_CHILD_PUSH") == "" {
		t.Skip("run by TestSSLCertFile")
	}
	st, err := oci.Open(os.Getenv("BB_TEST_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := st.Resolve(context.Background(), os.Getenv("BB_TEST_DIGEST"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Push(context.Background(), st, desc, os.Getenv("BB_TEST_REF"), remote.Options{}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("pushed")
}
