package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Meter counts bytes and redraws a status line every interval.
type Meter struct {
	label string
	out   io.Writer
	n     atomic.Int64
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup
}

// Start begins a meter on w if w is a terminal; otherwise it returns a
// meter that only counts.
func Start(w io.Writer, label string) *Meter {
	m := &Meter{label: label, start: time.Now(), stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		m.out = w
		m.done.Add(1)
		go m.loop()
	}
	return m
}

// Set records the bytes processed so far.
func (m *Meter) Set(n int64) { m.n.Store(n) }

// Add records n more bytes.
func (m *Meter) Add(n int64) { m.n.Add(n) }

func (m *Meter) loop() {
	defer m.done.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			m.draw()
			fmt.Fprintln(m.out)
			return
		case <-t.C:
			m.draw()
		}
	}
}

func (m *Meter) draw() {
	n := m.n.Load()
	el := time.Since(m.start)
	rate := float64(n) / el.Seconds()
	fmt.Fprintf(m.out, "\r\033[K%s: %s  %s/s  %s", m.label, Bytes(n), Bytes(int64(rate)), el.Truncate(100*time.Millisecond))
}

// Stop ends the display.
func (m *Meter) Stop() {
	if m.out == nil {
		return
	}
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.done.Wait()
}

// Bytes formats a byte count with a binary unit.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
