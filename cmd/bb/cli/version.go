package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are bb's version and source commit when set at link
// time (-ldflags "-X github.com/bot-bottle/bb/cmd/bb/cli.version=v1.2.3
// -X github.com/bot-bottle/bb/cmd/bb/cli.commit=..."; make build sets both);
// otherwise the module version and VCS stamp of the build information.
var version, commit string

// buildVersion is what `bb version` reports.
type buildVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// readVersion collects bb's version from the linker flag and the build
// information Go embeds in the binary (module version, VCS stamp).
func readVersion(bi *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: version, Commit: commit, Go: runtime.Version()}
	if !ok || bi == nil {
		if v.Version == "" {
			v.Version = "(unknown)"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	if v.Version == "" {
		v.Version = bi.Main.Version
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v buildVersion) write(w io.Writer) error {
	commit := v.Commit
	if commit == "" {
		commit = "(unknown)"
	} else if v.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "version: %s\ncommit:  %s\n", v.Version, commit)
	if err == nil && v.Time != "" {
		_, err = fmt.Fprintf(w, "time:    %s\n", v.Time)
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "go:      %s\n", v.Go)
	}
	return err
}

func newVersion() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print bb's version, the commit it was built from and its Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := readVersion(debug.ReadBuildInfo())
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			return v.write(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}
