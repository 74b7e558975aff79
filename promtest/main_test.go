package promtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/internal/promtools"
)

// tailorBatch is the tailor-batch binary built from this checkout by TestMain: the
// tests drive the product through its CLI, as a user does.
var tailorBatch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "promtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tailorBatch = filepath.Join(dir, "tailor-batch")
	// Built in the main module, with its own go.sum: this module needs only the
	// packages its tests import.
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", tailorBatch, "./cmd/tailor-batch")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tailor-batch:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tb runs tailor-batch with args and returns its combined output; a non-zero exit
// fails the test unless allowFail.
func tb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(tailorBatch, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tailor-batch %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startGateway runs `tailor-batch gateway` until the test ends and returns its
// address once it is ready.
func startGateway(t *testing.T, brokers, topic string, args ...string) string {
	t.Helper()
	addr := promtools.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(tailorBatch, append([]string{"gateway", "--listen", addr, "--brokers", brokers, "--topic", topic}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		t.Logf("gateway:\n%s", logs.String())
	})
	waitHTTP(t, "http://"+addr+"/-/ready", 20*time.Second)
	return addr
}

func waitHTTP(t *testing.T, url string, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after %s: %v", url, limit, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
