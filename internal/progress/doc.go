// Package progress draws a one-line progress display (bytes, throughput,
// elapsed) on a terminal, and nothing when the output is not a terminal.
package progress
