package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedAddr is a loopback port nothing listens on (port 1 needs root to listen on, and
// nothing does in a test environment), for services that cannot be reached.
const closedAddr = "127.0.0.1:1"

// TestSinkConnectTimeout: sink against a broker it cannot reach exits non-zero after
// --connect-timeout, naming the broker and the flags.
func TestSinkConnectTimeout(t *testing.T) {
	addr := closedAddr
	start := time.Now()
	out, err := runCLI(t, "sink", "--brokers", addr, "--topics", "m", "--store", filepath.Join(t.TempDir(), "store"),
		"--connect-timeout", "2s", "--progress", "0")
	d := time.Since(start)
	if err == nil {
		t.Fatalf("sink without a broker exited 0:\n%s", out)
	}
	for _, want := range []string{"cannot connect to any Kafka broker", addr, "connection refused", "--brokers", "--connect-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if d < 2*time.Second || d > 20*time.Second {
		t.Errorf("sink gave up after %s, want just after --connect-timeout 2s", d)
	}
}

// TestSinkConnectTimeoutFlag: a wait of zero or less is a usage mistake.
func TestSinkConnectTimeoutFlag(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		_, err := runCLI(t, "sink", "--brokers", closedAddr, "--topics", "m", "--store", t.TempDir(), "--connect-timeout", v)
		if err == nil || !strings.Contains(err.Error(), "--connect-timeout") || exitCode(err, &bytes.Buffer{}) != exitError {
			t.Errorf("--connect-timeout %s: %v", v, err)
		}
	}
}
