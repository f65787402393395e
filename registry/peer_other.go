//go:build !linux

package registry

import "net"

const peerUIDSupported = false

func peerUID(c net.Conn) (int, error) { return -1, errPeerUnknown }
