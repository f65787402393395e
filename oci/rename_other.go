//go:build !linux

package oci

// renameNoReplace moves src to dst unless dst exists; it reports whether
// it moved it.
func renameNoReplace(src, dst string) (bool, error) { return linkNoReplace(src, dst) }
