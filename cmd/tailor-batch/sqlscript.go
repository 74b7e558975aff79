package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// splitStatements splits a SQL script at the semicolons that end statements: not the
// ones inside a string ('…', E'…' with backslash escapes, $tag$…$tag$), a quoted
// identifier ("…"), or a comment (-- to the end of the line, /* … */, which nest as in
// DuckDB's parser). Statements that hold only blanks and comments are dropped. A quote
// or comment left open is an error naming where it starts, and nothing runs.
func splitStatements(script string) ([]string, error) {
	var (
		out   []string
		start int
		empty = true // the current statement has only blanks and comments so far
	)
	end := func(i int) {
		if !empty {
			out = append(out, strings.TrimSpace(script[start:i]))
		}
		start, empty = i+1, true
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == ';':
			end(i)
			i++
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			j := strings.IndexByte(script[i:], '\n')
			if j < 0 {
				i = len(script)
			} else {
				i += j + 1
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			j, err := skipBlockComment(script, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (script[i-1] == 'e' || script[i-1] == 'E') && (i == 1 || !isIdentByte(script[i-2]))
			j, err := skipQuoted(script, i, c, escapes)
			if err != nil {
				return nil, err
			}
			i, empty = j, false
		case c == '$':
			if tag := dollarTag(script[i:]); tag != "" {
				j := strings.Index(script[i+len(tag):], tag)
				if j < 0 {
					return nil, fmt.Errorf("SQL: the string opened by %s at %s is never closed", tag, position(script, i))
				}
				i, empty = i+len(tag)+j+len(tag), false
				continue
			}
			i, empty = i+1, false
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' {
				empty = false
			}
			i++
		}
	}
	end(len(script))
	return out, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dollarTag returns the opening tag of a dollar-quoted string at the start of s ($$ or
// $name$), or "" when s starts with something else, such as a parameter ($1).
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (j > 1 && c >= '0' && c <= '9'):
		default:
			return ""
		}
	}
	return ""
}

// skipQuoted returns the index just past the quote that closes the one at i; a doubled
// quote stands for itself, and with escapes a backslash escapes the next byte.
func skipQuoted(s string, i int, q byte, escapes bool) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if escapes {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	what := "string"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, fmt.Errorf("SQL: the %s opened by %c at %s is never closed", what, q, position(s, i))
}

// skipBlockComment returns the index just past the */ that closes the /* at i.
func skipBlockComment(s string, i int) (int, error) {
	depth := 0
	for j := i; j+1 < len(s); j++ {
		switch s[j : j+2] {
		case "/*":
			depth++
			j++
		case "*/":
			depth--
			j++
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("SQL: the comment opened by /* at %s is never closed", position(s, i))
}

// position names byte i of s as line and column, both from 1.
func position(s string, i int) string {
	line := strings.Count(s[:i], "\n") + 1
	col := i - strings.LastIndexByte(s[:i], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// statementTitle is the one-line form of a statement for the header above its result.
// Leading comments are left out.
func statementTitle(stmt string) string {
	for {
		stmt = strings.TrimSpace(stmt)
		if rest, ok := strings.CutPrefix(stmt, "--"); ok {
			_, stmt, _ = strings.Cut(rest, "\n")
			continue
		}
		if strings.HasPrefix(stmt, "/*") {
			if j, err := skipBlockComment(stmt, 0); err == nil {
				stmt = stmt[j:]
				continue
			}
		}
		break
	}
	t := strings.Join(strings.Fields(stmt), " ")
	if r := []rune(t); len(r) > 72 {
		t = string(r[:71]) + "…"
	}
	return t
}

// tailorViews are the views sql defines, what each holds and, for the one that needs
// one, the flag that enables it.
var tailorViews = []struct{ name, holds, needs string }{
	{"points", "every point of the segments, duplicates included, with provenance", ""},
	{"latest", "the points de-duplicated by the run's rule (latest arrival wins)", ""},
	{"series", "the published series files", ""},
	{"rollup", "the published rollups, a row per series, resolution and bucket", ""},
	{"legacy", "the legacy data", "--legacy SRC"},
}

// missingTableRe matches DuckDB's error for a table that does not exist, and the
// suggestion it adds, which names DuckDB's own catalog tables (pg_am, duckdb_columns).
var (
	missingTableRe = regexp.MustCompile(`Table with name ([^\s!]+) does not exist!`)
	didYouMeanRe   = regexp.MustCompile(`\n?Did you mean "[^"]*"\?`)
)

// viewHint rewrites DuckDB's "Table with name X does not exist! Did you mean pg_am?"
// into an error that lists Tailor's views and the flag each needs, with the closest
// one when X looks like a typo of it. hasLegacy says whether --legacy was given. Other
// errors come back unchanged.
func viewHint(err error, hasLegacy bool) error {
	if err == nil {
		return nil
	}
	m := missingTableRe.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	name := strings.Trim(m[1], `"`)
	var b strings.Builder
	b.WriteString(strings.TrimSpace(didYouMeanRe.ReplaceAllString(err.Error(), "")))
	lower := strings.ToLower(name)
	switch i := slices.IndexFunc(tailorViews, func(v struct{ name, holds, needs string }) bool { return v.name == lower }); {
	case i >= 0 && tailorViews[i].needs != "" && !(lower == "legacy" && hasLegacy):
		fmt.Fprintf(&b, "\nthe view %s needs %s", tailorViews[i].name, tailorViews[i].needs)
	default:
		best, bestD := "", 3
		for _, v := range tailorViews {
			if d := editDistance(lower, v.name); d < bestD {
				best, bestD = v.name, d
			}
		}
		if best != "" {
			fmt.Fprintf(&b, "\ndid you mean the view %s?", best)
		}
	}
	b.WriteString("\nTailor's views:")
	for _, v := range tailorViews {
		fmt.Fprintf(&b, "\n  %-7s %s", v.name, v.holds)
		if v.needs != "" {
			fmt.Fprintf(&b, " (needs %s)", v.needs)
		}
	}
	return &hintError{msg: b.String(), err: err}
}

// hintError replaces an error's message and keeps it for errors.Is and errors.As.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// editDistance is the Levenshtein distance of a and b (short names only).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var errNoStatement = errors.New("sql: no statement given (pass the SQL as the argument, or - to read it from standard input)")
