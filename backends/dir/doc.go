// Package dir is the runtime-free backend: a bottle is a root filesystem
// directory on this host. Commit streams it through GNU tar on the host
// into the same pipeline as every other backend; resume extracts the
// snapshot into a directory. It is the default for machines without a
// container runtime and the way to measure the pipeline alone.
package dir
