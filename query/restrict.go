//go:build duckdb_arrow

package query

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/big"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Restrictions from SQL (docs/validation.md, "Pruning"). DuckDB parses the statement
// (json_serialize_sql gives its syntax tree as JSON) and Go reads, for each reference
// to one of Tailor's views, the conjuncts of the WHERE of the SELECT that reads it
// which compare one of its columns with a constant: =, <, <=, >, >=, BETWEEN, IN, and
// AND/OR of them. What they admit is the reference's restriction; a view's is the union
// over its references, and a reference whose filters cannot be read admits everything.
// The filters themselves stay in the statement and run in DuckDB, so a restriction only
// decides what a reader may leave unread: whatever a filter says, the answer is the
// same as without pruning.
//
// A conjunct restricts a table's rows before a join only when that is sound: in inner,
// left, right, full and cross joins every comparison with a constant is false on NULL,
// so the rows of the table it removes, and the NULL-padded rows their absence creates,
// were all filtered out anyway. ASOF, positional, semi, anti and lateral joins pick
// rows by what else is there, and a sample (USING SAMPLE) draws from the whole table,
// so their tables are read whole. So is every table of a statement that is not a plain
// query (json_serialize_sql handles SELECT only), and of every statement after one that
// might define a view or macro over Tailor's views, which a later statement could read
// without naming.

// restrictions returns the restriction the statements place on each of names, and
// whether the statements mention it as a table at all.
func (e *Engine) restrictions(ctx context.Context, stmts []string, names []string) (map[string]Restriction, error) {
	out := map[string]Restriction{}
	seen := map[string]bool{}
	for _, stmt := range stmts {
		if e.pruneOff {
			return nil, nil
		}
		tree, plain := e.parse(ctx, explained(stmt))
		if !plain {
			// Not a plain query: it may create objects that later statements read.
			e.pruneOff = true
			return nil, nil
		}
		if tree == nil {
			return nil, nil // DuckDB cannot parse it: the statement's own run says why
		}
		w := newWalker(names)
		w.any(tree)
		if w.opaque {
			return nil, nil
		}
		for _, n := range names {
			refs := w.refs[n]
			if len(refs) == 0 {
				continue
			}
			r := refs[0]
			for _, o := range refs[1:] {
				r = r.Union(o)
			}
			if w.allColumns || w.structRef(n) {
				r.Columns = nil
			} else {
				r.Columns = w.columns()
			}
			if seen[n] {
				r = out[n].Union(r)
			}
			out[n], seen[n] = r, true
		}
	}
	return out, nil
}

// explained is the statement an EXPLAIN [ANALYZE] shows (which defines nothing), or
// stmt.
func explained(stmt string) string {
	rest := strings.TrimSpace(stmt)
	for _, kw := range []string{"EXPLAIN", "ANALYZE"} {
		if len(rest) > len(kw) && strings.EqualFold(rest[:len(kw)], kw) && (rest[len(kw)] == ' ' || rest[len(kw)] == '\n' || rest[len(kw)] == '\t') {
			rest = strings.TrimSpace(rest[len(kw):])
		}
	}
	return rest
}

// parse returns the statement's syntax tree (nil if DuckDB cannot parse it), and
// plain false if the statement is not a plain query (DuckDB serializes SELECTs only).
func (e *Engine) parse(ctx context.Context, stmt string) (tree any, plain bool) {
	res, err := e.Query(ctx, "SELECT json_serialize_sql("+quoteString(stmt)+")::VARCHAR", nil)
	if err != nil {
		return nil, false
	}
	defer res.Release()
	var js string
	for res.Next() {
		rec := res.RecordBatch()
		if rec.NumRows() > 0 {
			if c, ok := rec.Column(0).(*array.String); ok {
				js = strings.Clone(c.Value(0))
			}
		}
	}
	if res.Err() != nil || js == "" {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(js)))
	dec.UseNumber() // ids use all 64 bits
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, false
	}
	if root["error"] == true {
		// A syntax error fails the statement itself; anything else is a statement
		// json_serialize_sql does not take, i.e. not a plain SELECT.
		return nil, str(root, "error_type") == "parser"
	}
	return root["statements"], true
}

// walker collects the references to views in a syntax tree.
type walker struct {
	views map[string]bool
	// refs holds one restriction per reference of each view.
	refs map[string][]Restriction
	// aliases are the names the references go by (alias, or the view's name).
	aliases map[string]string
	cols    map[string]bool
	single  map[string]bool // one-part column names, which may name a whole row
	// allColumns is set by a star (*, t.*, COLUMNS(...)) in a SELECT that reads a view
	// directly, or by a natural join.
	allColumns bool
	// direct says, for each SELECT being walked, whether its FROM names a view itself
	// (not through a subquery): only there a star expands to the view's columns.
	direct []bool
	// opaque is set by a construct that reads tables by a name in a string.
	opaque bool
}

func newWalker(names []string) *walker {
	w := &walker{views: map[string]bool{}, refs: map[string][]Restriction{}, aliases: map[string]string{}, cols: map[string]bool{}, single: map[string]bool{}}
	for _, n := range names {
		w.views[strings.ToLower(n)] = true
	}
	return w
}

func (w *walker) columns() []string {
	out := []string{}
	for c := range w.cols {
		out = append(out, c)
	}
	return unionColumns(out, []string{})
}

// structRef reports whether a column reference names a whole row of view n (SELECT s
// FROM series s gives each row as a struct).
func (w *walker) structRef(n string) bool {
	for a, v := range w.aliases {
		if v == n && w.single[a] {
			return true
		}
	}
	return false
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// any walks any part of the tree.
func (w *walker) any(x any) {
	switch v := x.(type) {
	case []any:
		for _, e := range v {
			w.any(e)
		}
	case map[string]any:
		switch {
		case str(v, "type") == "SELECT_NODE":
			w.selectNode(v)
			return
		case str(v, "type") == "BASE_TABLE":
			w.baseTable(v, nil, false, false)
			return
		case str(v, "type") == "TABLE_FUNCTION":
			if fn, ok := v["function"].(map[string]any); ok {
				switch strings.ToLower(str(fn, "function_name")) {
				case "query", "query_table":
					w.opaque = true
				}
			}
		case str(v, "class") == "STAR":
			if len(w.direct) == 0 || w.direct[len(w.direct)-1] {
				w.allColumns = true
			}
		case str(v, "class") == "COLUMN_REF":
			if names, ok := v["column_names"].([]any); ok && len(names) > 0 {
				last, _ := names[len(names)-1].(string)
				w.cols[strings.ToLower(last)] = true
				if len(names) == 1 {
					w.single[strings.ToLower(last)] = true
				}
			}
		}
		for _, e := range v {
			w.any(e)
		}
	}
}

// selectNode handles the tables in a SELECT's FROM, whose rows its WHERE filters.
func (w *walker) selectNode(m map[string]any) {
	from, _ := m["from_table"].(map[string]any)
	where := m["where_clause"]
	sampled := m["sample"] != nil
	single := from != nil && str(from, "type") == "BASE_TABLE"
	w.direct = append(w.direct, false)
	w.direct[len(w.direct)-1] = w.fromTable(from, where, !sampled, single)
	for k, v := range m {
		if k != "from_table" {
			w.any(v)
		}
	}
	w.direct = w.direct[:len(w.direct)-1]
}

// fromTable walks a FROM clause; where filters its base tables when pushable. It
// reports whether the clause names a view itself.
func (w *walker) fromTable(t map[string]any, where any, pushable, single bool) bool {
	if t == nil {
		return false
	}
	switch str(t, "type") {
	case "BASE_TABLE":
		return w.baseTable(t, where, pushable, single)
	case "JOIN":
		jt, rt := str(t, "join_type"), str(t, "ref_type")
		ok := pushable && (jt == "INNER" || jt == "LEFT" || jt == "RIGHT" || jt == "OUTER") &&
			(rt == "REGULAR" || rt == "CROSS" || rt == "NATURAL")
		if rt == "NATURAL" {
			w.allColumns = true
		}
		if cols, ok := t["using_columns"].([]any); ok {
			for _, c := range cols {
				if s, ok := c.(string); ok {
					w.cols[strings.ToLower(s)] = true
				}
			}
		}
		w.any(t["condition"])
		l, _ := t["left"].(map[string]any)
		r, _ := t["right"].(map[string]any)
		dl := w.fromTable(l, where, ok, false)
		dr := w.fromTable(r, where, ok, false)
		return dl || dr
	}
	w.any(t)
	return false
}

// baseTable records one reference to a table, restricted by where when pushable, and
// reports whether it is a view.
func (w *walker) baseTable(t map[string]any, where any, pushable, single bool) bool {
	name := strings.ToLower(str(t, "table_name"))
	if !w.views[name] {
		return false
	}
	alias := strings.ToLower(str(t, "alias"))
	if alias == "" {
		alias = name
	}
	w.aliases[alias] = name
	r := Restriction{}
	if pushable && t["sample"] == nil && where != nil {
		r = w.filter(where, alias, single)
	}
	w.refs[name] = append(w.refs[name], r)
	return true
}

// filter is the restriction expression e places on the rows of the table known as
// alias (the only table of its FROM when single).
func (w *walker) filter(e any, alias string, single bool) Restriction {
	m, ok := e.(map[string]any)
	if !ok {
		return Restriction{}
	}
	kids, _ := m["children"].([]any)
	switch str(m, "type") {
	case "CONJUNCTION_AND":
		r := Restriction{}
		for _, k := range kids {
			r = r.Intersect(w.filter(k, alias, single))
		}
		return r
	case "CONJUNCTION_OR":
		if len(kids) == 0 {
			return Restriction{}
		}
		r := w.filter(kids[0], alias, single)
		for _, k := range kids[1:] {
			r = r.Union(w.filter(k, alias, single))
		}
		return r
	case "COMPARE_EQUAL", "COMPARE_LESSTHAN", "COMPARE_LESSTHANOREQUALTO", "COMPARE_GREATERTHAN", "COMPARE_GREATERTHANOREQUALTO":
		op := str(m, "type")
		col, okc := w.column(m["left"], alias, single)
		v, okv := constant(m["right"])
		if !okc || !okv {
			col, okc = w.column(m["right"], alias, single)
			v, okv = constant(m["left"])
			op = flip[op]
		}
		if !okc || !okv {
			return Restriction{}
		}
		lo, hi := bounds(op, v)
		return restrictColumn(col, lo, hi)
	case "COMPARE_BETWEEN":
		col, ok := w.column(m["input"], alias, single)
		if !ok {
			return Restriction{}
		}
		var lo, hi *big.Int
		if v, ok := constant(m["lower"]); ok {
			lo = v
		}
		if v, ok := constant(m["upper"]); ok {
			hi = v
		}
		return restrictColumn(col, lo, hi)
	case "COMPARE_IN":
		if len(kids) < 2 {
			return Restriction{}
		}
		col, ok := w.column(kids[0], alias, single)
		if !ok {
			return Restriction{}
		}
		r := Restriction{}
		for i, k := range kids[1:] {
			v, ok := constant(k)
			if !ok {
				return Restriction{}
			}
			one := restrictColumn(col, v, v)
			if i == 0 {
				r = one
			} else {
				r = r.Union(one)
			}
		}
		return r
	}
	return Restriction{}
}

var flip = map[string]string{
	"COMPARE_EQUAL":                "COMPARE_EQUAL",
	"COMPARE_LESSTHAN":             "COMPARE_GREATERTHAN",
	"COMPARE_LESSTHANOREQUALTO":    "COMPARE_GREATERTHANOREQUALTO",
	"COMPARE_GREATERTHAN":          "COMPARE_LESSTHAN",
	"COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
}

// bounds is the closed interval "x op v" admits; nil is unbounded.
func bounds(op string, v *big.Int) (lo, hi *big.Int) {
	one := big.NewInt(1)
	switch op {
	case "COMPARE_EQUAL":
		return v, v
	case "COMPARE_LESSTHAN":
		return nil, new(big.Int).Sub(v, one)
	case "COMPARE_LESSTHANOREQUALTO":
		return nil, v
	case "COMPARE_GREATERTHAN":
		return new(big.Int).Add(v, one), nil
	}
	return v, nil
}

// column returns the point column e names, if e is a reference to one of the table
// known as alias.
func (w *walker) column(e any, alias string, single bool) (string, bool) {
	m, ok := e.(map[string]any)
	if !ok || str(m, "class") != "COLUMN_REF" {
		return "", false
	}
	names, _ := m["column_names"].([]any)
	parts := make([]string, len(names))
	for i, n := range names {
		s, _ := n.(string)
		parts[i] = strings.ToLower(s)
	}
	var col string
	switch {
	case len(parts) == 1 && single:
		col = parts[0]
	case len(parts) == 2 && parts[0] == alias:
		col = parts[1]
	case len(parts) == 3 && parts[1] == alias:
		col = parts[2]
	default:
		return "", false
	}
	switch col {
	case "org_id", "metric_id", "context_key", "ts":
		return col, true
	}
	return "", false
}

// constant returns the value of an integer constant (also one cast to an integer
// type).
func constant(e any) (*big.Int, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return nil, false
	}
	if str(m, "class") == "CAST" {
		if m["try_cast"] == true {
			return nil, false
		}
		ct, _ := m["cast_type"].(map[string]any)
		if !integerType(str(ct, "id")) {
			return nil, false
		}
		return constant(m["child"])
	}
	if str(m, "class") != "CONSTANT" {
		return nil, false
	}
	val, _ := m["value"].(map[string]any)
	if val == nil || val["is_null"] == true {
		return nil, false
	}
	typ, _ := val["type"].(map[string]any)
	if !integerType(str(typ, "id")) {
		return nil, false
	}
	switch n := val["value"].(type) {
	case json.Number:
		return new(big.Int).SetString(n.String(), 10)
	case map[string]any: // HUGEINT, UHUGEINT: upper * 2^64 + lower
		up, ok1 := n["upper"].(json.Number)
		lo, ok2 := n["lower"].(json.Number)
		if !ok1 || !ok2 {
			return nil, false
		}
		u, ok1 := new(big.Int).SetString(up.String(), 10)
		l, ok2 := new(big.Int).SetString(lo.String(), 10)
		if !ok1 || !ok2 {
			return nil, false
		}
		return u.Lsh(u, 64).Add(u, l), true
	}
	return nil, false
}

func integerType(id string) bool {
	switch id {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT":
		return true
	}
	return false
}

// restrictColumn is the restriction col in [lo, hi] (nil: unbounded), clamped to the
// column's type.
func restrictColumn(col string, lo, hi *big.Int) Restriction {
	dmin, dmax := big.NewInt(0), new(big.Int).SetUint64(math.MaxUint64)
	switch col {
	case "ts":
		dmin, dmax = big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	case "org_id":
		dmax = big.NewInt(math.MaxUint32)
	}
	if lo == nil || lo.Cmp(dmin) < 0 {
		lo = dmin
	}
	if hi == nil || hi.Cmp(dmax) > 0 {
		hi = dmax
	}
	empty := lo.Cmp(hi) > 0
	if col == "ts" {
		if empty {
			return Restriction{Ts: &TsRange{1, 0}}
		}
		return Restriction{Ts: &TsRange{lo.Int64(), hi.Int64()}}
	}
	set := &IDSet{}
	if !empty {
		set = NewIDSet(IDRange{lo.Uint64(), hi.Uint64()})
	}
	switch col {
	case "org_id":
		return Restriction{Orgs: set}
	case "metric_id":
		return Restriction{Metrics: set}
	}
	return Restriction{Contexts: set}
}
