package ingest

import (
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// TestSinkOptionsPastLimits: a topic name that segment keys cannot hold, or frames of
// more rows than readers accept, fail when the sink is made, naming the limit.
func TestSinkOptionsPastLimits(t *testing.T) {
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Topics: []string{"ok", "a/b"}}, `sink: topic "a/b": character '/' at 1 is not allowed`},
		{Options{Topics: []string{strings.Repeat("t", 300)}}, "topic length 300 is larger than max allowed 249"},
		{Options{Topics: []string{"ok"}, FrameRows: columnar.MaxFrameRows + 1}, "sink: frame rows 1048577 is larger than max allowed 1048576"},
	} {
		tc.opt.Brokers, tc.opt.Store = []string{"127.0.0.1:1"}, storage.NewMem("t")
		if _, err := New(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%.40v): err = %v, want %q", tc.opt.Topics, err, tc.want)
		}
	}
}
