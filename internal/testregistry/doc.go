// Package testregistry serves bb's store over the registry API for tests
// of code that takes a pack.ServeFunc: a read-only registry on 127.0.0.1
// that answers <slug>:latest from the store tag <slug>, any manifest of
// the store by digest, and every blob of the store. Options inject the
// failures tests need (blobs that cannot be fetched).
package testregistry
