package registry

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

const peerUIDSupported = true

// peerUID returns the user owning the other end of the loopback TCP
// connection c: the uid of the socket whose local address is c's remote
// address and whose remote address is c's local address, in
// /proc/net/tcp or /proc/net/tcp6.
func peerUID(c net.Conn) (int, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, errPeerUnknown
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		uid, err := findSocketUID(table, remote, local)
		if err == nil {
			return uid, nil
		}
	}
	return -1, errPeerUnknown
}

// findSocketUID scans a /proc/net/tcp table for the socket from -> to.
func findSocketUID(table string, from, to *net.TCPAddr) (int, error) {
	f, err := os.Open(table)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		if !procAddrIs(fields[1], from) || !procAddrIs(fields[2], to) {
			continue
		}
		uid, err := strconv.Atoi(fields[7])
		if err != nil {
			return -1, fmt.Errorf("%s: uid %q: %w", table, fields[7], err)
		}
		return uid, nil
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	return -1, errPeerUnknown
}

// procAddrIs reports whether s, an address of /proc/net/tcp{,6} (hex
// IP in host byte order, 32 bits at a time, ":" hex port), is a.
func procAddrIs(s string, a *net.TCPAddr) bool {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil || int(port) != a.Port {
		return false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || len(raw)%4 != 0 {
		return false
	}
	// The kernel prints each 32-bit word of the address in network
	// order read as a host-order integer.
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	return net.IP(raw).Equal(a.IP)
}
