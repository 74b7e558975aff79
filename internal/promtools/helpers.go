package promtools

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tailor-metrics/tailor/ingest/payload"
)

// FreeAddr returns a free loopback address for a server the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RemoteWrite posts one snappy WriteRequest body to url as Prometheus does, with
// tenant in X-Scope-OrgID, and fails the test unless the answer is 204.
func RemoteWrite(t testing.TB, url string, body []byte, tenant string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("remote-write: %d %s", resp.StatusCode, b.String())
	}
}

// ParseDump parses one line of `promtool tsdb dump`: `{a="x", b="y"} value ts`
// (labels.Labels.String, then the value with %g and the timestamp). Label names that
// are not plain identifiers are quoted too.
func ParseDump(line string) (ls []payload.Label, value, ts string, err error) {
	if !strings.HasPrefix(line, "{") {
		return nil, "", "", fmt.Errorf("dump line %q: no labels", line)
	}
	rest := line[1:]
	for !strings.HasPrefix(rest, "}") {
		var name string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, "", "", fmt.Errorf("dump line %q: %w", line, err)
			}
			name, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			i := strings.IndexByte(rest, '=')
			if i < 0 {
				return nil, "", "", fmt.Errorf("dump line %q: no '='", line)
			}
			name, rest = rest[:i], rest[i:]
		}
		q, err := strconv.QuotedPrefix(strings.TrimPrefix(rest, "="))
		if err != nil {
			return nil, "", "", fmt.Errorf("dump line %q: %w", line, err)
		}
		v, _ := strconv.Unquote(q)
		ls = append(ls, payload.Label{Name: name, Value: v})
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "=")[len(q):], ", ")
	}
	f := strings.Fields(rest[1:])
	if len(f) != 2 {
		return nil, "", "", fmt.Errorf("dump line %q: want value and timestamp after the labels", line)
	}
	return ls, f[0], f[1], nil
}

// Kafka starts a one-broker kfake cluster with topic, closed when the test ends, and
// returns its brokers as a --brokers value.
func Kafka(t testing.TB, topic string, partitions int32) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// TenantsFile writes the tenant map the Prometheus tests use (team-a is org 17) into
// dir and returns its path.
func TenantsFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(p, []byte("tenants:\n  team-a: 17\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
