package registry

import (
	"errors"
	"log/slog"
	"net"
	"os"
)

// errPeerUnknown: the owner of a connection's other end could not be
// found.
var errPeerUnknown = errors.New("owner of the connection not found")

// ownerListener accepts only connections from processes of the user bb
// runs as, or of root (a container runtime's daemon pulling for it).
// Without credentials, loopback is the registry's only fence, and every
// local user reaches loopback: the store is private (0700), and so is
// what bb serve hands out of it.
type ownerListener struct {
	net.Listener
	uid int
	log *slog.Logger
}

func (l *ownerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == l.uid || uid == 0) {
			return c, nil
		}
		l.log.Warn("refused a connection from another local user: bb serve without credentials serves only its own user and root",
			"remote", c.RemoteAddr().String(), "uid", uid, "err", err)
		c.Close()
	}
}

// ownerOnly wraps ln when the registry has no credentials and peerUID
// works on this system.
func ownerOnly(ln net.Listener, log *slog.Logger) net.Listener {
	if !peerUIDSupported {
		return ln
	}
	return &ownerListener{Listener: ln, uid: os.Geteuid(), log: log}
}
