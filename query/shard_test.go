//go:build duckdb_arrow

package query

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
)

func TestShardPredicateMatchesShardMap(t *testing.T) {
	e, err := Open(context.Background(), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m := &columnar.ShardMap{Version: 1, Shared: 8, Dedicated: map[uint32]columnar.Dedicated{3: {Parts: 4}, 11: {}}}
	ctx := context.Background()
	if err := e.Exec(ctx, mix64Macro); err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"org-mod-3", "org-3-p0", "org-3-p3", "org-11", "org-mod-0"} {
		pred, err := shardPredicate(m, sh)
		if err != nil {
			t.Fatal(err)
		}
		// Orgs 0..19 and metrics around 2^63 and 2^64-1: the hash works mod 2^64.
		q := fmt.Sprintf(`SELECT org_id, metric_id FROM (SELECT o::UINTEGER AS org_id, m AS metric_id
			FROM range(20) t(o), (SELECT (9223372036854775000::UBIGINT + r::UBIGINT * 1000000000000000) AS m FROM range(9) s(r)
			UNION ALL SELECT 18446744073709551615::UBIGINT UNION ALL SELECT 1::UBIGINT)) WHERE %s ORDER BY ALL`, pred)
		res, err := e.Query(ctx, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for res.Next() {
			rec := res.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				got[fmt.Sprint(rec.Column(0).(*array.Uint32).Value(i), "/", rec.Column(1).(*array.Uint64).Value(i))] = true
			}
		}
		res.Release()
		n := 0
		for o := uint32(0); o < 20; o++ {
			for _, mt := range append([]uint64{math.MaxUint64, 1}, func() (ms []uint64) {
				for r := uint64(0); r < 9; r++ {
					ms = append(ms, 9223372036854775000+r*1000000000000000)
				}
				return
			}()...) {
				want := m.Shard(o, mt) == sh
				if want != got[fmt.Sprint(o, "/", mt)] {
					t.Fatalf("%s: org %d metric %d: in SQL %v, in the shard map %v", sh, o, mt, !want, want)
				}
				if want {
					n++
				}
			}
		}
		if n == 0 {
			t.Fatalf("%s: no point selected, the test proves nothing", sh)
		}
	}
}

func TestUsesFindsTheView(t *testing.T) {
	for _, s := range []string{"select * from points", "SELECT * FROM\n\"points\"", "SELECT count(*) FROM legacy,points"} {
		if !uses(s, "points") {
			t.Errorf("uses(%q) = false", s)
		}
	}
	if uses("SELECT (41 + 1)::BIGINT AS pointsx", "points") {
		t.Error("uses found points in pointsx")
	}
}
