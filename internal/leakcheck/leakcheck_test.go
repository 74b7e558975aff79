package leakcheck

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestCheckFindsALeak: a goroutine left blocked is found, with its stack; once it ends,
// Check passes.
func TestCheckFindsALeak(t *testing.T) {
	old := Grace
	Grace = 100 * time.Millisecond
	defer func() { Grace = old }()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		blockedForTheTest(stop)
	}()
	err := Check()
	if err == nil || !strings.Contains(err.Error(), "blockedForTheTest") || !strings.Contains(err.Error(), "1 goroutines") {
		t.Fatalf("Check with a blocked goroutine: %v", err)
	}
	close(stop)
	<-done
	if err := Check(); err != nil {
		t.Fatalf("Check after the goroutine ended: %v", err)
	}
}

func blockedForTheTest(stop chan struct{}) { <-stop }
