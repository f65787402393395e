// Package testimage builds small bottle root filesystems and images for
// tests, from files on this host: busybox-static for the shell and core
// tools, and the host's GNU tar with the shared libraries it needs. No
// registry or network is involved.
package testimage
