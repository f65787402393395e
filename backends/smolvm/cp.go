package smolvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/snapshot"
)

// DefaultTransferMax is smolvm machine cp's cap on one download: 4 GiB
// (smolvm 1.9.3 crates/smolvm-protocol/src/lib.rs FILE_TRANSFER_MAX_TOTAL),
// raised on the host by EnvTransferMax.
const DefaultTransferMax = 4 << 30

// EnvTransferMax is the variable smolvm reads its machine cp cap from
// (src/agent/client.rs file_transfer_max_total); bb reads it too, so
// that its check agrees with the smolvm it runs.
const EnvTransferMax = "SMOLVM_FILE_TRANSFER_MAX_BYTES"

// TransferMax returns the machine cp cap smolvm applies: EnvTransferMax
// when it parses, else DefaultTransferMax.
func TransferMax() int64 {
	if v, ok := os.LookupEnv(EnvTransferMax); ok {
		if n, err := ParseSize(v); err == nil {
			return n
		}
	}
	return DefaultTransferMax
}

// ParseSize parses a size the way smolvm 1.9.3 does (src/util.rs
// parse_size_bytes): a number with an optional binary unit K, M, G or T,
// optionally followed by i and/or B, case-insensitive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(c rune) bool { return !(c >= '0' && c <= '9' || c == '.') })
	if i < 0 {
		i = len(t)
	}
	v, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a valid size (expected a number, optional K/M/G/T)", s)
	}
	mult := map[string]float64{"": 1, "b": 1,
		"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1 << 10,
		"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1 << 20,
		"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1 << 30,
		"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1 << 40,
	}[strings.ToLower(strings.TrimSpace(t[i:]))]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size unit in %q (use K, M, G, or T)", s)
	}
	n := int64(v * mult)
	if n <= 0 {
		return 0, fmt.Errorf("size %q must be greater than zero", s)
	}
	return n, nil
}

// ErrOverCap is returned when a root filesystem's tar would exceed
// machine cp's cap.
var ErrOverCap = errors.New("the root filesystem is larger than smolvm machine cp can copy")

var totalRE = regexp.MustCompile(`Total bytes written: ([0-9]+)`)

// TarSize asks the guest's GNU tar how large the tar of args would be:
// with --file=/dev/null GNU tar does not read file contents, so this
// costs a walk of the tree, not a read of it.
func (s *Source) TarSize(ctx context.Context, args []string) (int64, error) {
	argv := make([]string, 0, len(args)+1)
	for _, a := range args {
		if a == "--file=-" {
			a = "--file=/dev/null"
		}
		argv = append(argv, a)
	}
	argv = append(argv[:1], append([]string{"--totals"}, argv[1:]...)...)
	cmd := exec.CommandContext(ctx, s.Binary, append([]string{"machine", "exec", "--name", s.Name, "--"}, tarcmd.Wrap(argv)...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	what := "smolvm machine exec tar --totals in " + s.Name
	if _, err := tarcmd.Judge(what, cmd.Run(), stderr.String()); err != nil {
		return 0, err
	}
	m := totalRE.FindStringSubmatch(stderr.String())
	if m == nil {
		return 0, fmt.Errorf("%s: no \"Total bytes written\" in its output: %s", what, strings.TrimSpace(stderr.String()))
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// checkCap refuses, before any work, a root filesystem whose tar is
// over machine cp's cap: smolvm would stream it for up to 600 s and then
// fail (src/agent/client.rs read_file_to_path_capped).
func (s *Source) checkCap(ctx context.Context) error {
	n, err := s.TarSize(ctx, tarcmd.Args("/", snapshot.DefaultExcludes, s.OneFS))
	if err != nil {
		return fmt.Errorf("measuring the root filesystem of %s for --method cp: %w", s.Name, err)
	}
	max := TransferMax()
	if n > max {
		return fmt.Errorf("%s: %w: its tar is %d bytes and smolvm machine cp stops at %d (%s); use --method exec, or raise %s if this smolvm allows it",
			s.Name, ErrOverCap, n, max, EnvTransferMax, EnvTransferMax)
	}
	return nil
}
