package clitool

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
)

var errMissing = errors.New("missing")

var sh = Tool{Backend: "test", Name: "sh", ErrMissing: errMissing, Install: "Install it", LoginPATH: "a PATH in ~/.zshrc", Env: "BB_TEST_BIN"}

func TestLookup(t *testing.T) {
	if _, err := sh.Lookup(""); err != nil {
		t.Fatalf("sh: %v", err)
	}
	_, err := sh.Lookup("bb-clitool-no-such-binary")
	if !errors.Is(err, errMissing) {
		t.Fatalf("err = %v, want one wrapping ErrMissing", err)
	}
	for _, want := range []string{"test: ", `"bb-clitool-no-such-binary" not found`, "Install it, or put", "BB_TEST_BIN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestListAndFind(t *testing.T) {
	ctx := context.Background()
	bin, err := sh.Lookup("")
	if err != nil {
		t.Fatal(err)
	}
	type item struct{ Name string }
	items, err := List[item](ctx, sh, bin, "-c", `echo ' [{"Name":"a"},{"Name":"b"}]'`)
	if err != nil {
		t.Fatal(err)
	}
	name := func(i *item) string { return i.Name }
	if got := Find(items, "b", name); got == nil || got != &items[1] {
		t.Errorf("Find b = %v", got)
	}
	if got := Find(items, "c", name); got != nil {
		t.Errorf("Find c = %v, want nil", got)
	}
	if _, err := List[item](ctx, sh, bin, "-c", "echo not json"); err == nil || !strings.Contains(err.Error(), "parsing sh -c echo not json") {
		t.Errorf("bad JSON: err = %v", err)
	}
	if _, err := List[item](ctx, sh, bin, "-c", "echo oops >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing command: err = %v, want its stderr", err)
	}
}

func TestCheckTar(t *testing.T) {
	bin, err := sh.Lookup("")
	if err != nil {
		t.Fatal(err)
	}
	// "sh -c 'echo ...' tar --version": the guest's tar is what the script prints.
	if err := sh.CheckTar(context.Background(), bin, "b1", "-c", `echo "tar (GNU tar) 1.35"`); err != nil {
		t.Errorf("GNU tar: %v", err)
	}
	err = sh.CheckTar(context.Background(), bin, "b1", "-c", `echo "tar (busybox) 1.36"`)
	if err == nil || !strings.Contains(err.Error(), "BusyBox") {
		t.Errorf("BusyBox tar: err = %v", err)
	}
}

func TestReplace(t *testing.T) {
	removed := 0
	remove := func() error { removed++; return nil }
	if err := Replace("b", false, false, false, remove); err != nil || removed != 0 {
		t.Errorf("absent: err %v, removed %d", err, removed)
	}
	if err := Replace("b", true, true, false, remove); !errors.Is(err, bottle.ErrRunning) || removed != 0 {
		t.Errorf("running: err %v, removed %d", err, removed)
	}
	if err := Replace("b", true, true, true, remove); err != nil || removed != 1 {
		t.Errorf("running, replace: err %v, removed %d", err, removed)
	}
	if err := Replace("b", true, false, false, remove); err != nil || removed != 2 {
		t.Errorf("stopped: err %v, removed %d", err, removed)
	}
}
