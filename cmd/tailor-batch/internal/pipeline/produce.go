package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/ingest/workload"
)

// ProduceOptions configures Produce.
type ProduceOptions struct {
	// JSONShare is the share of payloads sent as JSON instead of protobuf.
	JSONShare float64
	// Malformed records are sent after the workload; the sink must reject each.
	Malformed int
	// KafkaOpts are extra producer options (fault injection uses them, e.g. a dialer).
	KafkaOpts []kgo.Opt
	// Before, when not nil, is called before workload record i (from 0) is sent: game
	// days inject faults at fixed points of the stream. An error stops producing.
	Before func(i int64) error
}

// Produced is what Produce sent.
type Produced struct {
	Records, Points int64
	// Bytes are the record values' bytes (what Kafka retains, before its own overhead).
	Bytes int64
}

// Produce sends the workload's records to topic, then the malformed ones, and waits
// until every record is acknowledged. It returns the records and points sent.
func Produce(ctx context.Context, brokers []string, topic string, gen *workload.Gen, o ProduceOptions) (records, points int64, err error) {
	p, err := ProduceCounted(ctx, brokers, topic, gen, o)
	return p.Records, p.Points, err
}

// ProduceCounted is Produce that also counts the bytes sent.
func ProduceCounted(ctx context.Context, brokers []string, topic string, gen *workload.Gen, o ProduceOptions) (Produced, error) {
	var p Produced
	err := produce(ctx, brokers, topic, gen, o, &p)
	return p, err
}

func produce(ctx context.Context, brokers []string, topic string, gen *workload.Gen, o ProduceOptions, p *Produced) (err error) {
	records, points := &p.Records, &p.Points
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4 << 20),
		kgo.MaxBufferedRecords(20_000),
		kgo.ProducerLinger(5 * time.Millisecond),
	}, o.KafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var (
		perr  error
		errCh = make(chan error, 1)
	)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			select {
			case errCh <- err:
			default:
			}
		}
	}
	n := 0
	err = gen.Records(func(rec *workload.Record) error {
		if o.Before != nil {
			if err := o.Before(*records); err != nil {
				return err
			}
		}
		var value []byte
		// A stable share of records as JSON, the rest as protobuf: the sink detects each.
		if o.JSONShare > 0 && float64(n%1000) < o.JSONShare*1000 {
			value = payload.AppendJSON(nil, &rec.Payload)
		} else {
			value = payload.AppendProto(nil, &rec.Payload)
		}
		n++
		*records++
		*points += int64(len(rec.Payload.Timestamps))
		p.Bytes += int64(len(value))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: rec.Partition, Value: value, Timestamp: time.UnixMilli(rec.Timestamp)}, done)
		select {
		case perr = <-errCh:
			return perr
		default:
			return nil
		}
	})
	spec := gen.Spec()
	for i := 0; i < o.Malformed && err == nil; i++ {
		bad := [][]byte{[]byte(`{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[0.5,`), {0xff, 0xff, 0xff}, []byte(`{"org_id":-1}`)}[i%3]
		*records++
		p.Bytes += int64(len(bad))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % spec.Partitions), Value: bad, Timestamp: time.UnixMilli(spec.Start)}, done)
	}
	if ferr := cl.Flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	select {
	case perr = <-errCh:
		if err == nil {
			err = perr
		}
	default:
	}
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}
