package payload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/klauspost/compress/snappy"
	"github.com/tailor-metrics/tailor/columnar"
)

// Prometheus remote-write 1.0 (prometheus/prompb remote.proto and types.proto):
//
//	message WriteRequest { repeated TimeSeries timeseries = 1; reserved 2; repeated MetricMetadata metadata = 3; }
//	message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//	message Label        { string name = 1; string value = 2; }
//	message Sample       { double value = 1; int64 timestamp = 2; }
//
// The record value is the snappy block-format (not framed) encoding of a WriteRequest,
// exactly the body of a remote-write HTTP POST. Each TimeSeries becomes one payload:
//
//   - org_id: the value of the first of Options.OrgLabels present (default __tenant__,
//     then org_id), a decimal uint32; absent → Options.DefaultOrg (or an error with
//     Options.RequireOrg). That label is not a tag and not part of the context.
//   - metric_id: FNV-1a 64 of the __name__ value (required).
//   - context_key: FNV-1a 64 over the remaining labels sorted by name, each as
//     name 0xff value 0xff (0xff never occurs in UTF-8, so the encoding is unambiguous).
//   - tags: "name:value" for the remaining labels, sorted by name.
//
// As in Prometheus, a label with an empty value is the same as no label, so it is
// dropped. Samples keep their order (the pipeline sorts) and exact bits (stale markers
// included). Exemplars and metadata are skipped; native histograms are rejected
// because Tailor has no column for them and dropping them silently would lose data.

// Field numbers of the remote-write messages.
const (
	rwTimeseries = 1
	rwMetadata   = 3

	tsLabels     = 1
	tsSamples    = 2
	tsExemplars  = 3
	tsHistograms = 4

	labelName  = 1
	labelValue = 2

	sampleValue     = 1
	sampleTimestamp = 2
)

// maxSnappyExpansion bounds how much a standard snappy block can expand: the best
// element is a 3-byte copy of 64 bytes, so output <= 64/3 * input < 22 * input. A
// header claiming more is corrupt, and checking it first means a 10-byte record
// cannot make the decoder allocate megabytes.
const maxSnappyExpansion = 22

const metricNameLabel = "__name__"

// TimeSeries is one remote-write time series, the input of AppendRemoteWrite. It
// mirrors prompb.TimeSeries without exemplars and histograms.
type TimeSeries struct {
	Labels  []Label
	Samples []Sample
}

// Label is a remote-write label.
type Label struct {
	Name, Value string
}

// Sample is a remote-write sample: a value at a Unix-millisecond timestamp.
type Sample struct {
	Value     float64
	Timestamp int64
}

// label is a decoded label: byte slices into the decompressed request.
type label struct {
	name, value []byte
	off         int
}

func rwErr(field string, off int, reason string) *DecodeError {
	return &DecodeError{Format: RemoteWrite, Field: field, Offset: off, Decompressed: true, Reason: reason}
}

// decodeRemoteWrite decompresses a WriteRequest and appends one payload per series.
func (d *Decoder) decodeRemoteWrite(b []byte, dst []columnar.Payload) ([]columnar.Payload, error) {
	n, err := snappy.DecodedLen(b)
	if err != nil {
		return dst, &DecodeError{Format: RemoteWrite, Field: "snappy", Reason: "invalid block header", Err: err}
	}
	if max := d.maxDecompressed(); n > max {
		return dst, &DecodeError{Format: RemoteWrite, Field: "snappy", Reason: "decompressed size " + strconv.Itoa(n) + " is larger than max allowed " + strconv.Itoa(max)}
	}
	if n > maxSnappyExpansion*len(b) {
		return dst, &DecodeError{Format: RemoteWrite, Field: "snappy", Reason: "decompressed size " + strconv.Itoa(n) + " is more than snappy can expand " + strconv.Itoa(len(b)) + " bytes to"}
	}
	if cap(d.rwBuf) < n {
		d.rwBuf = make([]byte, n)
	}
	// DecodeStrict, not Decode: Decode also accepts S2 extensions that no remote-write
	// sender produces and that the reference decoders reject.
	buf, err := snappy.DecodeStrict(d.rwBuf[:n], b)
	if err != nil {
		return dst, &DecodeError{Format: RemoteWrite, Field: "snappy", Reason: "corrupt block", Err: err}
	}
	// One payload per series: size dst for all of them at once, so that a request of
	// many small series costs its payloads and no growth garbage on top (append's
	// growth allocates several times the final slice along the way).
	dst = slices.Grow(dst, countSeries(buf))
	k := 0
	for i := 0; i < len(buf); {
		start := i
		num, wt, j, reason := protoTag(buf, i)
		if reason != "" {
			return dst, rwErr("", start, reason)
		}
		i = j
		if num == rwTimeseries {
			field := func() string { return "timeseries[" + strconv.Itoa(k) + "]" }
			if wt != wireBytes {
				return dst, rwErr(field(), start, wrongWire(wt, wireBytes))
			}
			s, e, reason := protoBytes(buf, i)
			if reason != "" {
				return dst, rwErr(field(), i, reason)
			}
			if dst, err = d.decodeSeries(buf[:e], s, k, dst); err != nil {
				return dst, err
			}
			k++
			i = e
			continue
		}
		// metadata (3) and anything newer: skipped.
		if i, reason = protoSkip(buf, i, wt); reason != "" {
			return dst, rwErr("", start, "field "+strconv.FormatUint(num, 10)+": "+reason)
		}
	}
	return dst, nil
}

// countSeries counts the timeseries fields of a WriteRequest, skipping their bodies;
// it stops at the first malformed field, which decodeRemoteWrite then reports.
func countSeries(buf []byte) int {
	n := 0
	for i := 0; i < len(buf); {
		num, wt, j, reason := protoTag(buf, i)
		if reason != "" {
			return n
		}
		if j, reason = protoSkip(buf, j, wt); reason != "" {
			return n
		}
		if num == rwTimeseries && wt == wireBytes {
			n++
		}
		i = j
	}
	return n
}

// decodeSeries decodes the TimeSeries message buf[s:] (offsets stay relative to the
// whole request) into a new payload appended to dst.
func (d *Decoder) decodeSeries(buf []byte, s, k int, dst []columnar.Payload) ([]columnar.Payload, error) {
	prefix := func() string { return "timeseries[" + strconv.Itoa(k) + "]" }
	dst, p := grow(dst)
	d.labels = d.labels[:0]
	nlabels := 0
	for i := s; i < len(buf); {
		start := i
		num, wt, j, reason := protoTag(buf, i)
		if reason != "" {
			return dst, rwErr(prefix(), start, reason)
		}
		i = j
		switch num {
		case tsLabels:
			field := func() string { return prefix() + ".labels[" + strconv.Itoa(nlabels) + "]" }
			if wt != wireBytes {
				return dst, rwErr(field(), start, wrongWire(wt, wireBytes))
			}
			ls, le, reason := protoBytes(buf, i)
			if reason != "" {
				return dst, rwErr(field(), i, reason)
			}
			l, off, reason := decodeLabel(buf[:le], ls)
			if reason != "" {
				return dst, rwErr(field(), off, reason)
			}
			l.off = start
			if len(l.value) > 0 { // Prometheus: an empty value is no label.
				d.labels = append(d.labels, l)
			}
			nlabels++
			i = le
		case tsSamples:
			field := func() string { return prefix() + ".samples[" + strconv.Itoa(len(p.Timestamps)) + "]" }
			if wt != wireBytes {
				return dst, rwErr(field(), start, wrongWire(wt, wireBytes))
			}
			ss, se, reason := protoBytes(buf, i)
			if reason != "" {
				return dst, rwErr(field(), i, reason)
			}
			v, ts, off, reason := decodeSample(buf[:se], ss)
			if reason != "" {
				return dst, rwErr(field(), off, reason)
			}
			p.Timestamps = append(p.Timestamps, ts)
			p.Values = append(p.Values, v)
			i = se
		case tsHistograms:
			return dst, rwErr(prefix()+".histograms", start, "native histograms are not supported")
		default: // exemplars (3) and anything newer: skipped.
			if i, reason = protoSkip(buf, i, wt); reason != "" {
				return dst, rwErr(prefix(), start, "field "+strconv.FormatUint(num, 10)+": "+reason)
			}
		}
	}
	return dst, d.mapLabels(p, s, prefix)
}

// decodeLabel decodes the Label message buf[i:].
func decodeLabel(buf []byte, i int) (l label, off int, reason string) {
	for i < len(buf) {
		start := i
		num, wt, j, reason := protoTag(buf, i)
		if reason != "" {
			return l, start, reason
		}
		i = j
		if num != labelName && num != labelValue {
			if i, reason = protoSkip(buf, i, wt); reason != "" {
				return l, start, reason
			}
			continue
		}
		if wt != wireBytes {
			return l, start, wrongWire(wt, wireBytes)
		}
		s, e, reason := protoBytes(buf, i)
		if reason != "" {
			return l, i, reason
		}
		if !utf8.Valid(buf[s:e]) {
			return l, s, "invalid UTF-8"
		}
		if num == labelName {
			l.name = buf[s:e]
		} else {
			l.value = buf[s:e]
		}
		i = e
	}
	return l, 0, ""
}

// decodeSample decodes the Sample message buf[i:]. Absent fields are zero.
func decodeSample(buf []byte, i int) (v float64, ts int64, off int, reason string) {
	// Fast path: value then timestamp, both present, nothing else; what Prometheus
	// sends for every sample whose value and timestamp are not zero.
	if len(buf)-i >= 11 && buf[i] == sampleValue<<3|wireFixed64 && buf[i+9] == sampleTimestamp<<3|wireVarint {
		if u, j := uvarint(buf, i+10); j == len(buf) {
			return math.Float64frombits(binary.LittleEndian.Uint64(buf[i+1:])), int64(u), 0, ""
		}
	}
	for i < len(buf) {
		start := i
		num, wt, j, reason := protoTag(buf, i)
		if reason != "" {
			return 0, 0, start, reason
		}
		i = j
		switch num {
		case sampleValue:
			if wt != wireFixed64 {
				return 0, 0, start, wrongWire(wt, wireFixed64)
			}
			if len(buf)-i < 8 {
				return 0, 0, i, "truncated fixed64"
			}
			v = math.Float64frombits(binary.LittleEndian.Uint64(buf[i:]))
			i += 8
		case sampleTimestamp:
			if wt != wireVarint {
				return 0, 0, start, wrongWire(wt, wireVarint)
			}
			u, j := uvarint(buf, i)
			if j < 0 {
				return 0, 0, i, varintReason(j)
			}
			ts = int64(u)
			i = j
		default:
			if i, reason = protoSkip(buf, i, wt); reason != "" {
				return 0, 0, start, reason
			}
		}
	}
	return v, ts, 0, ""
}

// mapLabels turns the labels of a series into its org, metric, context and tags.
func (d *Decoder) mapLabels(p *columnar.Payload, seriesAt int, prefix func() string) error {
	ls := d.labels
	for _, l := range ls {
		if len(l.name) == 0 {
			return rwErr(prefix()+".labels", l.off, "empty label name")
		}
	}
	// Senders sort labels by name; sort when one did not (stable, so the error for a
	// duplicate points at the later one).
	byName := func(a, b label) int { return bytes.Compare(a.name, b.name) }
	if !slices.IsSortedFunc(ls, byName) {
		slices.SortStableFunc(ls, byName)
	}
	for j := 1; j < len(ls); j++ {
		if bytes.Equal(ls[j].name, ls[j-1].name) {
			return rwErr(prefix()+".labels", ls[j].off, "duplicate label name "+strconv.Quote(string(ls[j].name)))
		}
	}
	nameAt := -1
	for j := range ls {
		if string(ls[j].name) == metricNameLabel {
			nameAt = j
			break
		}
	}
	if nameAt < 0 {
		return rwErr(prefix()+".labels", seriesAt, "missing "+metricNameLabel+" label")
	}
	p.Metric = fnv1a64(fnvOffset64, ls[nameAt].value)

	orgAt := -1
	for _, want := range d.orgLabels() {
		for j := range ls {
			if string(ls[j].name) == want {
				orgAt = j
				break
			}
		}
		if orgAt >= 0 {
			break
		}
	}
	switch {
	case orgAt >= 0:
		org, err := strconv.ParseUint(string(ls[orgAt].value), 10, 32)
		if err != nil {
			return rwErr(prefix()+".labels", ls[orgAt].off, "org label "+string(ls[orgAt].name)+"="+strconv.Quote(string(ls[orgAt].value))+" is not a uint32")
		}
		p.Org = uint32(org)
	case d.opts.RequireOrg:
		return rwErr(prefix()+".labels", seriesAt, "missing org label (one of "+joinQuoted(d.orgLabels())+")")
	default:
		p.Org = d.opts.DefaultOrg
	}

	h := uint64(fnvOffset64)
	for j, l := range ls {
		if j == orgAt {
			continue
		}
		// The name is a tag too, so that a series file says what its metric is called
		// (export writes it back as __name__), but it is the metric id, not context.
		d.scratch = append(append(append(d.scratch[:0], l.name...), ':'), l.value...)
		p.Tags = append(p.Tags, d.internTag(d.scratch))
		if j == nameAt {
			continue
		}
		h = fnv1a64(h, l.name)
		h = fnv1a64(h, sep)
		h = fnv1a64(h, l.value)
		h = fnv1a64(h, sep)
	}
	p.Context = h
	return nil
}

// MapLabels maps one Prometheus label set to p's series key and tags by the
// remote-write rule, with the same code Decode runs on every TimeSeries: org from the
// first of Options.OrgLabels present, metric id from __name__, context key and tags
// from the rest, empty values dropped. It resets p first and leaves its points alone
// (empty). Readers of other Prometheus data (TSDB blocks) use it so that a series gets
// the ids the sink gives the same labels. An invalid label set (no __name__, an empty
// or duplicate name, invalid UTF-8, a non-numeric org label) is a *DecodeError whose
// Field is "labels" and whose Offset is the index of the offending label.
func (d *Decoder) MapLabels(ls []Label, p *columnar.Payload) error {
	p.Reset()
	d.labels = d.labels[:0]
	for i, l := range ls {
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return &DecodeError{Format: RemoteWrite, Field: "labels", Offset: i, Reason: "invalid UTF-8"}
		}
		if l.Value != "" {
			d.labels = append(d.labels, label{name: []byte(l.Name), value: []byte(l.Value), off: i})
		}
	}
	if err := d.mapLabels(p, 0, func() string { return "" }); err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Field, de.Decompressed = "labels", false
		}
		return err
	}
	return nil
}

var sep = []byte{0xff}

func joinQuoted(ss []string) string {
	var b []byte
	for k, s := range ss {
		if k > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, s)
	}
	return string(b)
}

// AppendRemoteWrite appends series encoded as a snappy-compressed (block format)
// Prometheus remote-write WriteRequest to dst and returns the extended slice. Labels
// and samples are written in the given order; every field is written, zeros included.
func AppendRemoteWrite(dst []byte, series []TimeSeries) []byte {
	raw := AppendWriteRequest(nil, series)
	n := snappy.MaxEncodedLen(len(raw))
	dst = slices.Grow(dst, n)
	enc := snappy.Encode(dst[len(dst):len(dst)+n], raw)
	return dst[:len(dst)+len(enc)]
}

// AppendWriteRequest appends series encoded as an uncompressed remote-write
// WriteRequest protobuf to dst. AppendRemoteWrite is this plus snappy; it is exported
// for producers that compress on their own and for tests.
func AppendWriteRequest(dst []byte, series []TimeSeries) []byte {
	for _, ts := range series {
		size := 0
		for _, l := range ts.Labels {
			ln := labelSize(l)
			size += 1 + varintLen(uint64(ln)) + ln
		}
		for _, s := range ts.Samples {
			sn := sampleSize(s)
			size += 1 + varintLen(uint64(sn)) + sn
		}
		dst = appendTag(dst, rwTimeseries, wireBytes)
		dst = binary.AppendUvarint(dst, uint64(size))
		for _, l := range ts.Labels {
			dst = appendTag(dst, tsLabels, wireBytes)
			dst = binary.AppendUvarint(dst, uint64(labelSize(l)))
			dst = appendTag(dst, labelName, wireBytes)
			dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
			dst = append(dst, l.Name...)
			dst = appendTag(dst, labelValue, wireBytes)
			dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
			dst = append(dst, l.Value...)
		}
		for _, s := range ts.Samples {
			dst = appendTag(dst, tsSamples, wireBytes)
			dst = binary.AppendUvarint(dst, uint64(sampleSize(s)))
			dst = appendTag(dst, sampleValue, wireFixed64)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Value))
			dst = appendTag(dst, sampleTimestamp, wireVarint)
			dst = binary.AppendUvarint(dst, uint64(s.Timestamp))
		}
	}
	return dst
}

func labelSize(l Label) int {
	return 1 + varintLen(uint64(len(l.Name))) + len(l.Name) + 1 + varintLen(uint64(len(l.Value))) + len(l.Value)
}

func sampleSize(s Sample) int {
	return 1 + 8 + 1 + varintLen(uint64(s.Timestamp))
}
