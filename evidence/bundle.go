package evidence

// FailMissingBundle: the bundle source (collect/bundle) found an inventory host in no
// evidence bundle: no site collector sent its evidence. It is kept apart from the
// block in evidence.go only to keep that block's alignment untouched.
const FailMissingBundle FailureClass = "missing_bundle"
