//go:build duckdb_arrow

package query

import (
	"context"
	"testing"
)

func TestSQLErrorHasPosition(t *testing.T) {
	e, err := Open(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.Query(context.Background(), "SELECT nope FROM (SELECT 1 AS x)", nil)
	if err == nil {
		t.Fatal("want error")
	}
	t.Log(err)
}
