// Command mkrootfs writes a small bottle root filesystem (busybox-static,
// GNU tar and its libraries, /etc/passwd, /home/node) into a directory,
// for the demo and the benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/bot-bottle/bb/internal/testing/testimage"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkrootfs DIR")
		os.Exit(2)
	}
	if err := testimage.BuildRootfs(os.Args[1], testimage.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "mkrootfs:", err)
		os.Exit(1)
	}
}
