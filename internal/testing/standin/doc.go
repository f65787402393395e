// Package standin holds what the stand-in executables share. The stand-ins
// (internal/testing/standin/container and internal/testing/standin/smolvm) are small Go
// programs that accept the argv forms bb uses with Apple's container CLI
// and with smolvm, so that bb's macos-container and smolmachines backends
// run for real on machines without those runtimes.
//
// A stand-in keeps its state under the directory named by BB_STANDIN_ROOT.
// Every container or VM is a real root filesystem directory; exec runs the
// command chrooted into it (root only), so the GNU tar bb asks for really
// runs inside the bottle. Which behaviours of which CLI versions they
// follow is listed in the README next to this file.
package standin
