//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// verifyBase is a store of segments over six hours with every window run: the state
// every damage below starts from.
func verifyBase(t *testing.T) (*storage.Mem, []*columnar.Segment) {
	t.Helper()
	ctx := context.Background()
	st := storage.NewMem("verify-base")
	lateWorkload(t, st, 11, 64)
	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}, Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, segs
}

func verifyStore(t *testing.T, st storage.Store, opt VerifyOptions) *VerifyReport {
	t.Helper()
	opt.Store = st
	if opt.Arrival.Size == 0 {
		opt.Arrival = testArrival()
	}
	opt.Engine = query.Options{Threads: 1}
	rep, err := Verify(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mustRead(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	b, err := storage.ReadAll(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t *testing.T, st storage.Store, key string, b []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// someRun is a published run with parts and a late output.
func someRun(t *testing.T, st storage.Store) *Manifest {
	t.Helper()
	ms, err := Published(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if len(m.Parts) > 0 && len(m.Inputs) > 1 {
			return m
		}
	}
	t.Fatal("no run with parts")
	return nil
}

func manifestKey(m *Manifest) string {
	w, _ := ParseWindowName(m.Window)
	return RunDir(m.Shard, w, m.RunID) + manifestName
}

// TestVerifyCleanStore: a store the pipeline made holds, and deep mode agrees.
func TestVerifyCleanStore(t *testing.T) {
	st, _ := verifyBase(t)
	rep := verifyStore(t, st, VerifyOptions{Deep: true})
	if !rep.OK() {
		t.Fatalf("problems on a clean store: %v", rep.Problems)
	}
	if rep.Runs == 0 || rep.Runs != rep.Current || rep.Windows != rep.Covered || rep.Deep != rep.Current || rep.Parts == 0 || rep.Frames == 0 || len(rep.Partitions) != 3 {
		t.Fatalf("report %+v", rep)
	}
}

// TestVerifyFindsEveryDamage causes every kind of damage verify reports, each on a copy
// of a clean store, and checks that verify names it (and only what the damage explains).
func TestVerifyFindsEveryDamage(t *testing.T) {
	base, segs := verifyBase(t)
	ctx := context.Background()
	chain := columnar.Chains(segs)[0] // partition 0's segments in offset order
	mid := chain.Segments[len(chain.Segments)/2]
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, st storage.Store) VerifyOptions
		want   ProblemKind
		check  func(t *testing.T, rep *VerifyReport)
	}{
		{"footer", func(t *testing.T, st storage.Store) VerifyOptions {
			b := mustRead(t, st, mid.Key)
			b[len(b)-columnar.TrailerSize-3] ^= 0x40 // inside the footer: its crc fails
			mustPut(t, st, mid.Key, b)
			return VerifyOptions{}
		}, SegmentUnreadable, nil},
		{"gap", func(t *testing.T, st storage.Store) VerifyOptions {
			if err := st.Delete(ctx, mid.Key); err != nil {
				t.Fatal(err)
			}
			return VerifyOptions{Deep: true}
		}, SegmentGap, func(t *testing.T, rep *VerifyReport) {
			if rep.DeepSkipped == 0 {
				t.Fatal("deep mode made again runs whose input is gone, or did not say it skipped them")
			}
			p := rep.Problems[0]
			if p.From != mid.Header.StartOffset || p.To != mid.Footer.EndOffset || p.Partition != mid.Header.Partition {
				t.Fatalf("gap %+v, want offsets [%d, %d) of partition %d", p, mid.Header.StartOffset, mid.Footer.EndOffset, mid.Header.Partition)
			}
			if len(rep.Collected) != 1 || rep.Collected[0] != mid.Key {
				t.Fatalf("collected %v, want %s", rep.Collected, mid.Key)
			}
		}},
		{"overlap", func(t *testing.T, st storage.Store) VerifyOptions {
			// A zombie writer's segment: the same records from one offset past mid's start.
			w := columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: mid.Header.Partition, StartOffset: mid.Header.StartOffset + 1, StartTimestamp: mid.Header.StartTimestamp}, columnar.DefaultShardMap(), 64)
			src := columnar.Source{Topic: "metrics", Partition: mid.Header.Partition, Offset: mid.Header.StartOffset + 1, Timestamp: mid.Header.StartTimestamp}
			if err := w.Add(src, []columnar.Payload{{SeriesKey: columnar.SeriesKey{Org: 1}, Timestamps: []int64{mid.Header.StartTimestamp}, Values: []float64{1}}}); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			mustPut(t, st, w.Key(), buf.Bytes())
			return VerifyOptions{}
		}, SegmentOverlap, func(t *testing.T, rep *VerifyReport) {
			if p := rep.Problems[0]; p.From != mid.Header.StartOffset+1 || p.To != mid.Header.StartOffset+2 {
				t.Fatalf("overlap %+v, want offsets [%d, %d)", p, mid.Header.StartOffset+1, mid.Header.StartOffset+2)
			}
		}},
		{"committed", func(t *testing.T, st storage.Store) VerifyOptions {
			return VerifyOptions{Committed: map[string]map[int32]int64{"metrics": {chain.Partition: chain.To + 5}}}
		}, CommittedGap, func(t *testing.T, rep *VerifyReport) {
			if p := rep.Problems[0]; p.From != chain.To || p.To != chain.To+5 {
				t.Fatalf("committed gap %+v, want [%d, %d)", p, chain.To, chain.To+5)
			}
		}},
		{"wide frame", func(t *testing.T, st storage.Store) VerifyOptions {
			// A segment whose frame spans decades: verify decodes it to find its windows.
			p := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 9}}
			for ts := int64(631152000000); ts < 1763942400000; ts += 365 * 86_400_000 {
				p.Timestamps, p.Values = append(p.Timestamps, ts), append(p.Values, math.E)
			}
			spec := segSpec{part: 9, startTs: 1763942400000, payloads: []columnar.Payload{p}, recTs: []int64{1763942400000}}
			writeSeg(t, st, spec, 1000)
			seg, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range seg {
				if s.Header.Partition == 9 {
					b := mustRead(t, st, s.Key)
					f := s.Footer.Frames[0]
					b[f.Offset+uint64(f.Length)-1] ^= 1
					mustPut(t, st, s.Key, b)
				}
			}
			// With windows that stay open its decades-old points belong to their own
			// windows, too many to enumerate, so verify decodes the frame to find them.
			return VerifyOptions{Arrival: Arrival{Size: time.Hour}}
		}, FrameCorrupt, nil},
		{"current without manifest", func(t *testing.T, st storage.Store) VerifyOptions {
			if err := st.Delete(ctx, manifestKey(someRun(t, st))); err != nil {
				t.Fatal(err)
			}
			return VerifyOptions{}
		}, CurrentMissing, nil},
		{"manifest unreadable", func(t *testing.T, st storage.Store) VerifyOptions {
			mustPut(t, st, manifestKey(someRun(t, st)), []byte("{not json"))
			return VerifyOptions{}
		}, ManifestUnreadable, nil},
		{"part missing", func(t *testing.T, st storage.Store) VerifyOptions {
			if err := st.Delete(ctx, someRun(t, st).Parts[0].Key); err != nil {
				t.Fatal(err)
			}
			return VerifyOptions{}
		}, PartMissing, nil},
		{"part size", func(t *testing.T, st storage.Store) VerifyOptions {
			k := someRun(t, st).Parts[0].Key
			mustPut(t, st, k, append(mustRead(t, st, k), 0))
			return VerifyOptions{}
		}, PartSize, nil},
		{"part checksum", func(t *testing.T, st storage.Store) VerifyOptions {
			// A flipped bit inside a block's values: the checksum catches it whatever the
			// decoder makes of it.
			k := someRun(t, st).Parts[0].Key
			b := mustRead(t, st, k)
			b[len(b)/3] ^= 0x10
			mustPut(t, st, k, b)
			return VerifyOptions{}
		}, PartChecksum, nil},
		{"part corrupt", func(t *testing.T, st storage.Store) VerifyOptions {
			// Garbage whose size and checksum the manifest was made to agree with.
			m := someRun(t, st)
			garbage := bytes.Repeat([]byte("tailor"), int(m.Parts[0].Size)/6+1)[:m.Parts[0].Size]
			mustPut(t, st, m.Parts[0].Key, garbage)
			sum := sha256.Sum256(garbage)
			m.Parts[0].SHA256 = hex.EncodeToString(sum[:])
			b, _ := json.Marshal(m)
			mustPut(t, st, manifestKey(m), b)
			return VerifyOptions{}
		}, PartCorrupt, nil},
		{"input changed", func(t *testing.T, st storage.Store) VerifyOptions {
			// A run's input is replaced by another object under its key (a copy tool
			// that padded it): the run's bytes are not the store's any more.
			key := someRun(t, st).Inputs[0].Key
			mustPut(t, st, key, append(mustRead(t, st, key), 0))
			return VerifyOptions{}
		}, InputChanged, nil},
		{"degraded", func(t *testing.T, st storage.Store) VerifyOptions {
			b := mustRead(t, st, mid.Key)
			f := mid.Footer.Frames[0]
			b[f.Offset+uint64(f.Length)-1] ^= 0xff
			mustPut(t, st, mid.Key, b)
			if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), SkipCorrupt: true, AcceptDegraded: true, Force: true, Engine: query.Options{Threads: 1}}}); err != nil {
				t.Fatal(err)
			}
			return VerifyOptions{}
		}, RunDegraded, func(t *testing.T, rep *VerifyReport) {
			if p := rep.Problems[0]; p.Points != uint64(mid.Footer.Frames[0].Rows) {
				t.Fatalf("degraded run loses %d points, want the frame's %d", p.Points, mid.Footer.Frames[0].Rows)
			}
		}},
		{"not run", func(t *testing.T, st storage.Store) VerifyOptions {
			// New records after the last run: the sink stored them, no run read them yet.
			last := chain.Segments[len(chain.Segments)-1]
			p := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 3, Metric: 3}, Timestamps: []int64{last.Header.StartTimestamp + 60_000, last.Header.StartTimestamp + 75_000}, Values: []float64{1, 2}}
			writeSeg(t, st, segSpec{part: chain.Partition, start: chain.To, startTs: last.Header.StartTimestamp + 120_000, payloads: []columnar.Payload{p}, recTs: []int64{last.Header.StartTimestamp + 120_000}}, 64)
			return VerifyOptions{}
		}, NotRun, func(t *testing.T, rep *VerifyReport) {
			if p := rep.Problems[0]; p.Points != 2 || p.RunID == "" {
				t.Fatalf("not run %+v, want the 2 new points in a run's window", p)
			}
		}},
		{"rule differs", func(t *testing.T, st storage.Store) VerifyOptions {
			a := testArrival()
			a.Lateness = time.Hour
			return VerifyOptions{Arrival: a}
		}, RuleDiffers, nil},
		{"counts differ", func(t *testing.T, st storage.Store) VerifyOptions {
			m := someRun(t, st)
			m.Counts.Duplicates++
			m.Counts.PointsIn++
			b, _ := json.Marshal(m)
			mustPut(t, st, manifestKey(m), b)
			return VerifyOptions{Deep: true}
		}, CountsDiffer, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := copyStore(t, base, tc.name)
			opt := tc.damage(t, st)
			rep := verifyStore(t, st, opt)
			if rep.OK() || rep.Count(tc.want) == 0 {
				t.Fatalf("verify did not report %s: %v", tc.want, rep.Problems)
			}
			var first []Problem
			for _, p := range rep.Problems {
				if p.Kind == tc.want {
					first = append(first, p)
				}
			}
			if tc.check != nil {
				tc.check(t, &VerifyReport{Problems: first, Collected: rep.Collected, DeepSkipped: rep.DeepSkipped})
			}
			for _, p := range first {
				if p.Detail == "" || !strings.Contains(p.String(), tc.want.String()) {
					t.Fatalf("problem %+v says nothing", p)
				}
			}
		})
	}
}

// TestVerifyProblemKindsNamed: every kind has a name and an unknown one prints as such.
func TestVerifyProblemKindsNamed(t *testing.T) {
	for k := SegmentUnreadable; k <= lastProblemKind; k++ {
		if !k.IsValid() || strings.HasPrefix(k.String(), "problem(") {
			t.Fatalf("kind %d has no name", k)
		}
	}
	if k := lastProblemKind + 1; k.IsValid() || k.String() != fmt.Sprintf("problem(%d)", uint8(k)) {
		t.Fatalf("unknown kind prints %q", k.String())
	}
}
