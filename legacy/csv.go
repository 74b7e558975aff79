package legacy

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/tailor-metrics/tailor/columnar"
)

// csvChunkBytes is the slice of a CSV file one worker parses.
const csvChunkBytes = 4 << 20

// OpenCSV reads a point CSV file (the header of columnar.CSVHeader, as `cat` writes and
// `import` reads) as a Source, parsed on every core with the parser `import` uses, so
// NaN, ±Inf, -0 and every float come through exactly. The file is held in memory as
// points; when it is not in (series, ts) order it is sorted there. A bad row fails with
// the file, line and field.
func OpenCSV(path string, f Filter) (*Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("legacy CSV: %w", err)
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	nl := bytes.IndexByte(b, '\n')
	head := b
	if nl >= 0 {
		head = b[:nl]
	}
	if h := strings.TrimSpace(string(head)); h != columnar.CSVHeader {
		if len(b) == 0 {
			return nil, fmt.Errorf("legacy CSV %s: empty file", path)
		}
		return nil, fmt.Errorf("legacy CSV %s line 1: header %q, want %q", path, h, columnar.CSVHeader)
	}
	var body []byte
	if nl >= 0 {
		body = b[nl+1:]
	}
	// Chunks end at line ends; each knows the line it starts on, for errors.
	type chunk struct {
		data []byte
		line int
		pts  points
		err  error
	}
	var chunks []*chunk
	line := 2
	for len(body) > 0 {
		end := min(len(body), csvChunkBytes)
		if i := bytes.IndexByte(body[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(body)
		}
		chunks = append(chunks, &chunk{data: body[:end], line: line})
		line += bytes.Count(body[:end], []byte{'\n'})
		body = body[end:]
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.err = parseCSV(path, c.data, c.line-1, &c.pts, &f)
		}()
	}
	wg.Wait()
	all := &points{}
	for _, c := range chunks {
		if c.err != nil {
			return nil, c.err
		}
		all.org = append(all.org, c.pts.org...)
		all.metric = append(all.metric, c.pts.metric...)
		all.ctx = append(all.ctx, c.pts.ctx...)
		all.ts = append(all.ts, c.pts.ts...)
		all.vals = append(all.vals, c.pts.vals...)
	}
	if !all.sorted() {
		all.sort()
	}
	r := &lazyRun{lb: pkey{}, ub: maxKey, rows: int64(all.len()), load: func() (*points, error) { return all, nil }}
	s := newSource([]*lazyRun{r}, nil)
	s.stats.Files, s.stats.Bytes = 1, int64(len(b))
	return s, nil
}

// parseCSV parses the lines of data (the first after line number line) into pts.
func parseCSV(path string, data []byte, line int, pts *points, f *Filter) error {
	for len(data) > 0 {
		line++
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if len(l) == 0 {
			continue
		}
		k, ts, v, err := columnar.ParseCSVPoint(l)
		if err != nil {
			return fmt.Errorf("legacy CSV %s line %d: %w", path, line, err)
		}
		if f.keep(k.Org, k.Metric, ts) {
			pts.append(k.Org, k.Metric, k.Context, ts, v)
		}
	}
	return nil
}
