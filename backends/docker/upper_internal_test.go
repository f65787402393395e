package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/storage"
)

func TestOverlayMount(t *testing.T) {
	table := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
50 42 0:41 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:2 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work
51 42 0:42 / /srv/with\040space/merged rw - overlay overlay rw,upperdir=/srv/with\040space/diff,userxattr
52 42 0:43 / /srv/plain rw - tmpfs tmpfs rw
`
	opts, err := overlayMount(strings.NewReader(table), "/var/lib/docker/overlay2/abc/merged")
	if err != nil || !strings.Contains(opts, "upperdir=/var/lib/docker/overlay2/abc/diff") {
		t.Errorf("overlay2 mount: %q, %v", opts, err)
	}
	opts, err = overlayMount(strings.NewReader(table), "/srv/with space/merged")
	if err != nil || !strings.Contains(opts, "userxattr") {
		t.Errorf("escaped mount point: %q, %v", opts, err)
	}
	var nu *errNoUpper
	if _, err := overlayMount(strings.NewReader(table), "/srv/plain"); !errors.As(err, &nu) {
		t.Errorf("a tmpfs: %v", err)
	}
	if _, err := overlayMount(strings.NewReader(table), "/nowhere"); !errors.As(err, &nu) {
		t.Errorf("no mount: %v", err)
	}
	if got := unescapeMount(`a\040b\134c\04`); got != `a b\c\04` {
		t.Errorf("unescape: %q", got)
	}
}

func TestFindUpperRefuses(t *testing.T) {
	for name, gd := range map[string]storage.DriverData{
		"other driver": {Name: "btrfs", Data: map[string]string{"UpperDir": "/u", "MergedDir": "/m"}},
		"relative":     {Name: "overlay2", Data: map[string]string{"UpperDir": "u", "MergedDir": "/m"}},
		"unclean":      {Name: "overlay2", Data: map[string]string{"UpperDir": "/a/../u", "MergedDir": "/m"}},
		"not mounted":  {Name: "overlay2", Data: map[string]string{"UpperDir": "/nonexistent/diff", "MergedDir": "/nonexistent/merged"}},
	} {
		ci := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{GraphDriver: gd}}
		var nu *errNoUpper
		if _, err := findUpper(ci); !errors.As(err, &nu) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
