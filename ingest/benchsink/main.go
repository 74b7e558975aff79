// Command benchsink measures the sink's sustained throughput from Kafka (kfake) to the
// local store, with 100-point payloads on 8 partitions, and its peak RSS, against a
// baseline measured in the same run. Run it with `make bench-sink`.
//
// The baseline stands in for the Kafka Connect S3 sink that the issue names (about
// 250,000 messages/s on a larger machine, not runnable here): a consumer group that
// does what that connector does with the ByteArray format, i.e. consume records and
// write their raw bytes to the same store in objects of up to 100,000 records per
// partition, with no decoding, no columns and no compression.
//
// Each side runs in a child process, so its CPU time (user+sys) and peak RSS are its
// own, not the broker's or the producer's. Points/s per core = points / CPU seconds.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/benchproc"
	"github.com/tailor-metrics/tailor/storage"
)

const topic = "metrics"

func main() {
	var (
		child   = flag.String("child", "", "internal: run one side (sink or baseline) against -brokers")
		out     = flag.String("out", "", "internal: file for the child's busy time (first record to end)")
		brokers = flag.String("brokers", "", "internal: kfake brokers")
		store   = flag.String("store", "", "internal: store directory")
		series  = flag.Int("series", 4000, "series (each 1,000 points in 100-point payloads)")
		buffer  = flag.Int64("buffer-bytes", 1<<30, "the sink's buffer pool")
		profile = flag.String("cpuprofile", "", "write the sink child's CPU profile to this file")
		serve   = flag.String("serve", "", "produce, write the brokers to this file and keep the broker up until interrupted, for timing -child runs from outside")
	)
	flag.Parse()
	log.SetFlags(0)
	if *child != "" {
		if *profile != "" {
			f, err := os.Create(*profile)
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Fatal(err)
			}
		}
		busy, err := runChild(*child, strings.Split(*brokers, ","), *store, *buffer)
		pprof.StopCPUProfile()
		if err != nil {
			log.Fatalf("%s: %v", *child, err)
		}
		if *out != "" {
			if err := os.WriteFile(*out, []byte(busy.String()), 0o644); err != nil {
				log.Fatal(err)
			}
		}
		return
	}
	if err := run(*series, *buffer, *profile, *serve); err != nil {
		log.Fatal(err)
	}
}

func run(series int, buffer int64, profile, serve string) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, topic))
	if err != nil {
		return err
	}
	defer c.Close()
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries, spec.PointsPerPayload, spec.Partitions, spec.Redeliver = series, 1000, 100, 8, 0
	gen, err := workload.New(spec)
	if err != nil {
		return err
	}
	fmt.Printf("producing %d series x 1,000 points in 100-point payloads to kfake, 8 partitions...\n", series)
	records, points, bytesIn, err := produce(c, gen)
	if err != nil {
		return err
	}
	fmt.Printf("produced %d records, %d points, %.1f MiB\n\n", records, points, float64(bytesIn)/(1<<20))
	if serve != "" {
		// Each child consumes with a group and a store of its own, so the same records
		// can be consumed again and again while the broker stays up.
		if err := os.WriteFile(serve, []byte(strings.Join(c.ListenAddrs(), ",")), 0o644); err != nil {
			return err
		}
		fmt.Printf("brokers in %s; run %s -child sink|baseline -brokers $(cat %s) -store DIR; interrupt to stop\n", serve, os.Args[0], serve)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchsink-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	type result struct {
		name            string
		wall, busy, cpu time.Duration
		rssKiB          int64
	}
	var res []result
	for _, side := range []string{"baseline", "sink"} {
		st := filepath.Join(dir, side)
		outFile := filepath.Join(dir, side+".busy")
		args := []string{"-child", side, "-brokers", strings.Join(c.ListenAddrs(), ","), "-store", st,
			"-buffer-bytes", strconv.FormatInt(buffer, 10), "-out", outFile}
		if profile != "" && side == "sink" {
			args = append(args, "-cpuprofile", profile)
		}
		out, pr, err := benchproc.Run(self, args...)
		os.Stdout.Write(out)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
		r := result{name: side, wall: seconds(pr.Secs), cpu: seconds(pr.CPU), rssKiB: pr.RSS >> 10}
		b, err := os.ReadFile(outFile)
		if err != nil {
			return err
		}
		if r.busy, err = time.ParseDuration(string(b)); err != nil {
			return err
		}
		res = append(res, r)
	}
	fmt.Printf("busy: first record consumed to last segment committed (the group join before it is not counted)\n")
	fmt.Printf("%-9s %10s %10s %10s %14s %14s %16s %12s\n", "", "wall", "busy", "cpu", "points/s", "payloads/s", "points/s/core", "peak RSS")
	perCore := map[string]float64{}
	for _, r := range res {
		pc := float64(points) / r.cpu.Seconds()
		perCore[r.name] = pc
		fmt.Printf("%-9s %10s %10s %10s %14.0f %14.0f %16.0f %9.0f MiB\n", r.name, r.wall.Round(time.Millisecond), r.busy.Round(time.Millisecond),
			r.cpu.Round(time.Millisecond), float64(points)/r.busy.Seconds(), float64(records)/r.busy.Seconds(), pc, float64(r.rssKiB)/1024)
	}
	sink := res[1]
	fmt.Printf("\nsink / baseline: points per CPU second %.2fx, points/s %.2fx\n", perCore["sink"]/perCore["baseline"], res[0].busy.Seconds()/res[1].busy.Seconds())
	fmt.Printf("goal >= 1,000,000 points/s per core: %s (%.0f)\n", benchproc.Verdict(perCore["sink"] >= 1e6), perCore["sink"])
	limit := float64(buffer)/(1<<20) + 200
	fmt.Printf("goal peak RSS <= buffer pool + 200 MiB = %.0f MiB: %s (%.0f MiB)\n", limit, benchproc.Verdict(float64(sink.rssKiB)/1024 <= limit), float64(sink.rssKiB)/1024)
	fmt.Printf("reference (not measured here): Kafka Connect's S3 sink, about 250,000 messages/s on a larger machine\n")
	return nil
}

func produce(c *kfake.Cluster, gen *workload.Gen) (records, points, size int64, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	var perr error
	err = gen.Records(func(rec *workload.Record) error {
		v := payload.AppendProto(nil, &rec.Payload)
		records++
		points += int64(len(rec.Payload.Timestamps))
		size += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: rec.Partition, Value: v, Timestamp: time.UnixMilli(rec.Timestamp)},
			func(_ *kgo.Record, err error) {
				if err != nil && perr == nil {
					perr = err
				}
			})
		return nil
	})
	if err == nil {
		err = cl.Flush(ctx)
	}
	return records, points, size, errors.Join(err, perr)
}

// runChild runs one side and returns its busy time: from the first record consumed to
// the end.
func runChild(side string, brokers []string, dir string, buffer int64) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp(dir, side+"-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	st, err := storage.OpenLocal(dir)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	if side != "sink" {
		return rawSink(ctx, brokers, st)
	}
	s, err := ingest.New(ingest.Options{Brokers: brokers, Topics: []string{topic}, Group: "bench-sink-" + strconv.Itoa(os.Getpid()), Store: st,
		StopAtEnd: true, BufferBytes: buffer, Format: payload.Proto})
	if err != nil {
		return 0, err
	}
	first := make(chan time.Time, 1)
	stop := make(chan struct{})
	go func() {
		for s.Stats().Records == 0 {
			select {
			case <-stop:
				first <- time.Now()
				return
			case <-time.After(time.Millisecond):
			}
		}
		first <- time.Now()
	}()
	err = s.Run(ctx)
	close(stop)
	return time.Since(<-first), err
}

// rawSink is the baseline: consume every record and store the raw values, 100,000
// records per object and partition, committing after each object.
func rawSink(ctx context.Context, brokers []string, st storage.Store) (busy time.Duration, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bench-raw-"+strconv.Itoa(os.Getpid())), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, brokers)
	if err != nil {
		return 0, err
	}
	var first time.Time
	type part struct {
		buf   bytes.Buffer
		n     int
		start int64
		next  int64
	}
	parts := map[int32]*part{}
	flush := func(p int32, pt *part) error {
		key := fmt.Sprintf("raw/%s-%d-%020d", topic, p, pt.start)
		if err := st.Create(ctx, key, bytes.NewReader(pt.buf.Bytes())); err != nil {
			return err
		}
		pt.buf.Reset()
		pt.n = 0
		pt.start = pt.next
		return cl.CommitRecords(ctx, &kgo.Record{Topic: topic, Partition: p, Offset: pt.next - 1, LeaderEpoch: -1})
	}
	done := 0
	for _, end := range ends {
		if end == 0 {
			done++ // an empty partition has nothing to store
		}
	}
	for done < len(ends) {
		fs := cl.PollRecords(ctx, 10_000)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		if first.IsZero() && fs.NumRecords() > 0 {
			first = time.Now()
		}
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			pt := parts[r.Partition]
			if pt == nil {
				pt = &part{start: r.Offset}
				parts[r.Partition] = pt
			}
			var lenBuf [4]byte
			n := len(r.Value)
			lenBuf[0], lenBuf[1], lenBuf[2], lenBuf[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
			pt.buf.Write(lenBuf[:])
			pt.buf.Write(r.Value)
			pt.n++
			pt.next = r.Offset + 1
			if pt.n >= 100_000 || pt.next >= ends[r.Partition] {
				if err := flush(r.Partition, pt); err != nil && ferr == nil {
					ferr = err
				}
				if pt.next >= ends[r.Partition] {
					done++
				}
			}
		})
		if ferr != nil {
			return 0, ferr
		}
	}
	return time.Since(first), nil
}

func endOffsets(ctx context.Context, brokers []string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return ingest.EndOffsets(ctx, cl, []string{topic})
}
