// Package cli is bb's command tree. Each command binds its flags and makes
// one library call; New builds a fresh tree, so tests run commands in
// parallel.
package cli
