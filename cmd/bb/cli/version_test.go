package cli

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/bot-bottle/bb", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := readVersion(bi, true)
	want := buildVersion{Version: "v1.2.3", Commit: "0123abcd", Time: "2026-01-02T03:04:05Z", Modified: true, Go: "go1.99.1"}
	if v != want {
		t.Fatalf("readVersion = %+v, want %+v", v, want)
	}
	var b bytes.Buffer
	if err := v.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"version: v1.2.3", "commit:  0123abcd (modified)", "go:      go1.99.1"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("output %q lacks %q", b.String(), s)
		}
	}
	if v := readVersion(nil, false); v.Version != "(unknown)" || v.Go == "" {
		t.Errorf("without build info: %+v", v)
	}
	if v := readVersion(&debug.BuildInfo{}, true); v.Version != "(devel)" {
		t.Errorf("empty module version: %+v", v)
	}
}

func TestVersionCommand(t *testing.T) {
	root := New()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var v buildVersion
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("bb version --json: %v: %s", err, out.String())
	}
	if v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Fatalf("bb version --json = %+v", v)
	}
}
