// Package packserve gives tests pack.ServeFuncs: Serve starts bb's
// embedded registry (package registry) as bb does, and NoBlobs puts a
// proxy in front of it that refuses every blob, so a pull fails after
// the manifest was found (failure injection for pack create).
package packserve
