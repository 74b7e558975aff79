package blocks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/tailor-metrics/tailor/encoder"
)

// Export labels (docs/prometheus.md, Labels): a series' Prometheus labels come from its
// tags, split at the first ':' into name and value. Remote-write series carry their
// whole label set as tags, __name__ included (payload.Decoder), so they come back as
// they were sent, less the tenant label, which is the block's directory instead.
const (
	// metricNamePrefix names the metric of a series without a __name__ tag (Tailor's
	// own payloads name metrics by id only): tailor_metric_ and the id in 16 hex digits.
	metricNamePrefix = "tailor_metric_"
	// BareTagsLabel holds, comma-joined in tag order, the tags that are not name:value
	// pairs with a non-empty name and value, which a Prometheus label cannot be.
	BareTagsLabel = "tailor_tags"
)

// labelMaker builds the labels of series, reusing its scratch.
type labelMaker struct {
	b    labels.ScratchBuilder
	kv   []labels.Label
	bare []string
}

// seriesLabels returns the labels of s by the export rule. A tag name that occurs twice
// gets its values comma-joined in tag order, since a label name occurs once.
func (m *labelMaker) seriesLabels(s *encoder.Series) labels.Labels {
	m.kv, m.bare = m.kv[:0], m.bare[:0]
	hasName := false
	for _, t := range s.Tags {
		k, v, ok := strings.Cut(t, ":")
		if !ok || k == "" || v == "" {
			m.bare = append(m.bare, t)
			continue
		}
		hasName = hasName || k == model.MetricNameLabel
		m.kv = append(m.kv, labels.Label{Name: k, Value: v})
	}
	if !hasName {
		m.kv = append(m.kv, labels.Label{Name: model.MetricNameLabel, Value: fmt.Sprintf("%s%016x", metricNamePrefix, s.Key.Metric)})
	}
	if len(m.bare) > 0 {
		m.kv = append(m.kv, labels.Label{Name: BareTagsLabel, Value: strings.Join(m.bare, ",")})
	}
	slices.SortStableFunc(m.kv, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	m.b.Reset()
	for i := 0; i < len(m.kv); i++ {
		l := m.kv[i]
		if i+1 < len(m.kv) && m.kv[i+1].Name == l.Name {
			vals := []string{l.Value}
			for i+1 < len(m.kv) && m.kv[i+1].Name == l.Name {
				i++
				vals = append(vals, m.kv[i].Value)
			}
			l.Value = strings.Join(vals, ",")
		}
		m.b.Add(l.Name, l.Value)
	}
	return m.b.Labels()
}
