// Package iox holds the small helpers several packages share: a reader
// that stops when its context is done, a reader and a writer that count
// the bytes through them, a writer that keeps the tail of what a process
// printed (for error messages), and the removal of the temporary files of
// killed writes.
package iox
