package testimage

import "os/exec"

// InstallFindutils copies the host's GNU find and GNU date (with their
// shared libraries) into the root filesystem at dir, to /usr/bin, ahead
// of BusyBox's applets on PATH: bottles list their files with them for
// incremental commits.
func InstallFindutils(dir string) error {
	for _, name := range []string{"find", "date"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return err
		}
		if err := installWithLibs(p, dir); err != nil {
			return err
		}
	}
	return nil
}
