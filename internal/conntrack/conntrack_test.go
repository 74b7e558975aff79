package conntrack

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestCutClosesAndRefuses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx := context.Background()
	tr := New()
	dial := tr.Dialer(nil)
	a, err := dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // twice is harmless
	if n := tr.Open(); n != 1 {
		t.Fatalf("%d connections tracked, want 1 (one closed)", n)
	}
	down := errors.New("unreachable")
	if n := tr.Cut(down); n != 1 {
		t.Fatalf("cut closed %d connections, want 1", n)
	}
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("a cut connection still reads")
	}
	for range 2 {
		if _, err := dial(ctx, "tcp", l.Addr().String()); !errors.Is(err, down) {
			t.Fatalf("dial during the cut: %v, want the cut's error", err)
		}
	}
	if n := tr.Restore(); n != 2 {
		t.Fatalf("%d dials refused, want 2", n)
	}
	c, err := dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial after restore: %v", err)
	}
	c.Close()
}
