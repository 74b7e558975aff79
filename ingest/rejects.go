package ingest

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// Reject is one line of a rejects file: a record that could not be decoded, with its raw
// bytes and the reason. Rejects are never dropped: they are stored beside the segment
// that covers their offset, and counted in the segment footer and the metrics.
type Reject struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	Reason    string `json:"reason"`
	// Raw is the record value, base64 (standard encoding).
	Raw string `json:"raw"`
}

// rejects collects the JSON lines of one segment's rejected records.
type rejects struct {
	buf []byte
}

func (r *rejects) reset() { r.buf = r.buf[:0] }

func (r *rejects) add(src columnar.Source, raw []byte, reason error) {
	r.buf = appendReject(r.buf, src, raw, reason)
}

func appendReject(dst []byte, src columnar.Source, raw []byte, reason error) []byte {
	b, err := json.Marshal(Reject{
		Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, Timestamp: src.Timestamp,
		Reason: reason.Error(), Raw: base64.StdEncoding.EncodeToString(raw),
	})
	if err != nil {
		panic("BUG: marshal reject: " + err.Error())
	}
	return append(append(dst, b...), '\n')
}

// RejectsKey is the key of the rejects file of the segment that starts at start: the
// segment's key with "rejects/" for "segments/" and ".jsonl" for ".tseg", so a segment
// and its rejects are found together and re-created under the same name on replay.
func RejectsKey(topic string, partition int32, start, startTimestamp int64) string {
	k := columnar.SegmentKey(topic, partition, start, startTimestamp)
	return "rejects/" + strings.TrimSuffix(strings.TrimPrefix(k, "segments/"), ".tseg") + ".jsonl"
}
