package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/storage"
)

// TestSinkRejectsRecordsPastLimits: records that the segment format cannot hold (a
// remote-write label of 70 KB, a JSON record with 70,000 tags, a protobuf tag of 64 KiB)
// arrive through Kafka between good ones. The sink stores every good record, sends each
// bad one to rejects with the limit it passed, and run and cat give back every good
// point, bit for bit, with its tags: the bad records cost no good point.
func TestSinkRejectsRecordsPastLimits(t *testing.T) {
	const rwTopic = "rw"
	cluster, err := pipeline.StartBroker(2, kfake.SeedTopics(2, rwTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	type sent struct {
		topic     string
		partition int32
		value     []byte
	}
	var records []sent
	produce := func(topic string, partition int32, value []byte) {
		t.Helper()
		r := &kgo.Record{Topic: topic, Partition: partition, Value: value, Timestamp: time.UnixMilli(1763942400000 + int64(len(records)))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		records = append(records, sent{topic, partition, value})
	}

	// want holds every good point by series, with the series' tags.
	type series struct {
		tags []string
		pts  map[int64]float64
	}
	want := map[columnar.SeriesKey]*series{}
	expect := func(p columnar.Payload) {
		s := want[p.SeriesKey]
		if s == nil {
			s = &series{pts: map[int64]float64{}}
			want[p.SeriesKey] = s
		}
		s.tags = slices.Clone(p.Tags)
		for i, ts := range p.Timestamps {
			s.pts[ts] = p.Values[i]
		}
	}
	good := func(i int) columnar.Payload {
		return columnar.Payload{
			SeriesKey:  columnar.SeriesKey{Org: uint32(i % 3), Metric: uint64(100 + i), Context: uint64(i)},
			Tags:       []string{"env:prod", fmt.Sprintf("i:%d", i)},
			Timestamps: []int64{1763942400000 + int64(i)*1000, 1763942400000 + int64(i)*1000 + 7},
			Values:     []float64{float64(i) + 0.5, math.Copysign(0, -1)},
		}
	}
	type bad struct {
		topic     string
		partition int32
		value     []byte
		reason    string
	}
	var bads []bad
	reject := func(topic string, partition int32, value []byte, reason string) {
		produce(topic, partition, value)
		bads = append(bads, bad{topic, partition, value, reason})
	}
	tooMany := good(1000)
	tooMany.Tags = make([]string, 70_000)
	for i := range tooMany.Tags {
		tooMany.Tags[i] = "t"
	}
	tooLong := good(1001)
	tooLong.Tags = []string{"env:prod", "blob:" + strings.Repeat("b", columnar.MaxTagLen-4)}
	atLimit := good(1002)
	atLimit.Tags = []string{"blob:" + strings.Repeat("c", columnar.MaxTagLen-5)}
	for i := range 40 {
		p := good(i)
		expect(p)
		if i%2 == 0 {
			produce(pipeline.Topic, int32(i%2), payload.AppendProto(nil, &p))
		} else {
			produce(pipeline.Topic, int32(i%2), payload.AppendJSON(nil, &p))
		}
		switch i {
		case 10:
			reject(pipeline.Topic, 0, payload.AppendJSON(nil, &tooMany), "payload: tag count 70000 is larger than max allowed 65535")
		case 21:
			reject(pipeline.Topic, 1, payload.AppendProto(nil, &tooLong), "payload: tags[1] length 65536 is larger than max allowed 65535")
		case 30:
			produce(pipeline.Topic, 0, payload.AppendProto(nil, &atLimit))
			expect(atLimit)
		}
	}
	// Remote-write: a series of the bad request carries a 70 KB label, which snappy
	// sends in about 3.5 KB.
	var dec payload.Decoder
	for i := range 20 {
		req := []payload.TimeSeries{{
			Labels:  []payload.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: fmt.Sprintf("j%d", i)}, {Name: "org_id", Value: "7"}},
			Samples: []payload.Sample{{Value: float64(i), Timestamp: 1763942400000 + int64(i)*1000}, {Value: -0.25, Timestamp: 1763942400000 + int64(i)*1000 + 1}},
		}}
		value := payload.AppendRemoteWrite(nil, req)
		ps, err := dec.Decode(payload.RemoteWrite, value, nil)
		if err != nil {
			t.Fatal(err)
		}
		expect(ps[0])
		produce(rwTopic, int32(i%2), value)
		if i == 5 {
			huge := append(req, payload.TimeSeries{
				Labels:  []payload.Label{{Name: "__name__", Value: "big"}, {Name: "blob", Value: strings.Repeat("z", 70_000)}},
				Samples: []payload.Sample{{Value: 1, Timestamp: 1763942400000}},
			})
			value := payload.AppendRemoteWrite(nil, huge)
			if len(value) > 5000 {
				t.Fatalf("the 70 KB label takes %d bytes of snappy", len(value))
			}
			// The tag's index depends on the label mapping; its length does not.
			reject(rwTopic, 1, value, "] length 70005 is larger than max allowed 65535")
		}
	}

	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	for _, args := range [][]string{
		{"--topics", pipeline.Topic, "--group", "g-metrics"},
		{"--topics", rwTopic, "--group", "g-rw", "--format", "remote-write"},
	} {
		out, err := runCLI(t, append([]string{"sink", "--brokers", brokers, "--store", store, "--stop-at-end", "--flush-payloads", "15"}, args...)...)
		if err != nil {
			t.Fatalf("sink %v: %v\n%s", args, err, out)
		}
	}
	if out, err := runCLI(t, "run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp")); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}

	st, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	segs, err := columnar.ListSegments(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var covered uint64
	for _, s := range segs {
		covered += s.Footer.Records
	}
	if covered != uint64(len(records)) {
		t.Fatalf("segments cover %d records, %d were produced", covered, len(records))
	}
	got := 0
	err = pipeline.CatPoints(ctx, st, "", func(s *encoder.Series) error {
		w := want[s.Key]
		if w == nil {
			return fmt.Errorf("series %+v was not produced by a good record", s.Key)
		}
		if !slices.Equal(s.Tags, w.tags) {
			return fmt.Errorf("series %+v: tags %.60q, want %.60q", s.Key, s.Tags, w.tags)
		}
		if len(s.Ts) != len(w.pts) {
			return fmt.Errorf("series %+v: %d points, want %d", s.Key, len(s.Ts), len(w.pts))
		}
		for i, ts := range s.Ts {
			if v, ok := w.pts[ts]; !ok || math.Float64bits(v) != math.Float64bits(s.Values[i]) {
				return fmt.Errorf("series %+v: point (%d, %v) was not produced", s.Key, ts, s.Values[i])
			}
		}
		got++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Fatalf("cat gave %d series, want %d", got, len(want))
	}

	// Every bad record is in rejects, once, with its raw bytes and the limit it passed.
	var rejects []ingest.Reject
	err = st.List(ctx, "rejects/", func(a storage.Attrs) error {
		b, err := storage.ReadAll(ctx, st, a.Key)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			var r ingest.Reject
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return err
			}
			rejects = append(rejects, r)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rejects) != len(bads) {
		t.Fatalf("%d rejects, want %d: %+v", len(rejects), len(bads), rejects)
	}
	for _, b := range bads {
		i := slices.IndexFunc(rejects, func(r ingest.Reject) bool {
			raw, _ := base64.StdEncoding.DecodeString(r.Raw)
			return r.Topic == b.topic && r.Partition == b.partition && bytes.Equal(raw, b.value)
		})
		if i < 0 {
			t.Fatalf("the bad record of %s-%d is not in rejects", b.topic, b.partition)
		}
		if r := rejects[i]; !strings.HasPrefix(r.Reason, "payload: ") || !strings.HasSuffix(r.Reason, b.reason) {
			t.Errorf("reject %s-%d at offset %d: reason %q, want %q", r.Topic, r.Partition, r.Offset, r.Reason, b.reason)
		}
	}
}
