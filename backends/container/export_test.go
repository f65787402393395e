package container

// CheckLoaded exposes checkLoaded to the external tests.
var CheckLoaded = checkLoaded

// LostBlob exposes lostBlob to the external tests.
var LostBlob = lostBlob
