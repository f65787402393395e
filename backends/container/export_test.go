package container

// CheckLoaded exposes checkLoaded to the external tests.
var CheckLoaded = checkLoaded
