//go:build race

package registry_test

// raceEnabled: the race detector makes every byte a test touches cost
// far more (TestBigBlobFlatMemory uses a smaller blob under it).
const raceEnabled = true
