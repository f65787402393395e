// Command bbbench is bb's benchmark harness (make bench). It is not part of
// the test suite.
//
// bench/build-bottle.sh builds the bench bottles (a ~1 GB and a ~0.25 GB
// root filesystem: Debian bookworm minbase from debootstrap, the Go
// toolchain, ~30k generated source files and a few hundred MB of
// generated binaries), imports them into Docker, starts them as
// bot-bottle-bench and bot-bottle-bench-small and applies the "agent
// work" (gen-work / apply-work). bbbench run then measures, on those
// bottles and in one run, bb's commit, export, push, serve and smolvm
// paths against the tools they replace, and writes markdown tables and raw
// JSON under .bench/.
//
// Every measurement is a step; a step whose tool or bb command is missing
// is skipped with a note, so the harness runs on any checkout.
package main
