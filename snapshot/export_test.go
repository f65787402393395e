package snapshot

// SetPlanMemory sets the bound of the listings' comparison for a test.
func SetPlanMemory(n int64) (restore func()) {
	old := planMemory
	planMemory = n
	return func() { planMemory = old }
}
