// Package clitool holds what the backends that drive a runtime through
// its command-line tool (container/: Apple's container, smolvm/: smolvm)
// share: finding the binary and explaining how to install it, running a
// short command with its stderr in the error, reading a JSON listing and
// finding a bottle in it, checking the guest's tar, and making room for
// a bottle on resume.
package clitool
