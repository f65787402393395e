// Package storetest holds test helpers that look inside an oci.Store's
// directory, for what the store's API does not expose.
package storetest
