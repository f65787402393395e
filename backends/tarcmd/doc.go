// Package tarcmd builds the GNU tar command bb runs inside a bottle and
// wraps an external process's stdout as a tar stream whose Read reports
// the process's failure (with its stderr) in place of EOF.
package tarcmd
