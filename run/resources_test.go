package run

import (
	"testing"

	"github.com/tailor-metrics/tailor/query"
)

func TestParseBytesAndRunMemory(t *testing.T) {
	for s, want := range map[string]int64{"4GB": 4e9, "512MiB": 512 << 20, " 1.5 gib ": 3 << 29, "100b": 100, "2TB": 2e12} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Fatalf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GB", "4", "4XB", "-1GB", "0MB", "1e30TB"} {
		if _, err := ParseBytes(s); err == nil {
			t.Fatalf("ParseBytes(%q) accepted", s)
		}
	}
	duck, points, err := RunMemory(query.Options{MemoryLimit: "64MiB", Threads: 3})
	if err != nil || duck.MemoryLimit != "32768KiB" || duck.Threads != 3 || points != 32<<20 {
		t.Fatalf("RunMemory(64MiB) = %+v, %d, %v", duck, points, err)
	}
	if _, _, err := RunMemory(query.Options{MemoryLimit: "lots"}); err == nil {
		t.Fatal("RunMemory accepted a bad limit")
	}
}
