// Package conntrack tracks the connections a dialer opens, so that all of them can be
// closed at once. The S3 store closes its kept-alive connections on Close (the SDK clones
// the transport it is given, so CloseIdleConnections cannot reach the one in use), and
// the fault harness cuts the network between Kafka clients and the broker.
package conntrack

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// DialFunc is the signature of net.Dialer.DialContext, http.Transport.DialContext and
// kgo.Dialer.
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// Tracker remembers the open connections of the dialers it made. It is safe for
// concurrent use.
type Tracker struct {
	mu      sync.Mutex
	conns   map[*conn]struct{}
	refuse  error // non-nil: dials fail with it
	refused int
}

// New returns a tracker with no connections.
func New() *Tracker { return &Tracker{conns: map[*conn]struct{}{}} }

// Dialer wraps dial (nil: a zero net.Dialer) so that every connection it opens is
// tracked until it is closed, and dials fail while the tracker is cut.
func (t *Tracker) Dialer(dial DialFunc) DialFunc {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := t.check(addr); err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &conn{Conn: c, t: t}
		t.mu.Lock()
		defer t.mu.Unlock()
		// Cut while we dialed: the connection must not outlive the cut.
		if t.refuse != nil {
			t.refused++
			c.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, t.refuse)
		}
		t.conns[tc] = struct{}{}
		return tc, nil
	}
}

func (t *Tracker) check(addr string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refuse == nil {
		return nil
	}
	t.refused++
	return fmt.Errorf("dial %s: %w", addr, t.refuse)
}

// Cut closes every tracked connection and makes new dials fail with err until Restore
// (for good, if Restore is never called). It returns how many connections it closed.
func (t *Tracker) Cut(err error) int {
	if err == nil {
		panic("BUG: conntrack: Cut without an error")
	}
	t.mu.Lock()
	conns := t.conns
	t.conns = map[*conn]struct{}{}
	t.refuse = err
	t.refused = 0
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return len(conns)
}

// Restore lets dials through again, and returns how many were refused since the cut.
func (t *Tracker) Restore() (refused int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refuse = nil
	return t.refused
}

// Open returns how many tracked connections are open.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

type conn struct {
	net.Conn
	t    *Tracker
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}
