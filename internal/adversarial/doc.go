// Package adversarial holds the fault tests of bb's store: concurrent
// commits of one slug and of several, commits racing gc, bb killed with
// SIGKILL at random points of commit, import, export and push, and a disk
// that fills up. After each, the store must be valid (every tag resolves
// to a complete image, every blob hashes to its name) and the previous
// snapshot must still resume. The package has tests only.
package adversarial
