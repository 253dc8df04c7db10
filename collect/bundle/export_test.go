package bundle

// SetTestHookBeforeVerify sets the hook load runs between reading a bundle's metadata
// files and verifying them, and returns the function that removes it.
func SetTestHookBeforeVerify(f func(dir string)) (restore func()) {
	testHookBeforeVerify = f
	return func() { testHookBeforeVerify = nil }
}
