// Package fstree records a directory tree (paths, types, modes, owners,
// sizes, content hashes, link targets) so tests can compare the tree a
// bottle had before a commit with the one it has after a resume.
package fstree
