package loadtest

import (
	"fmt"
	"io"
	"text/tabwriter"
)

const (
	gib          = 1 << 30
	hoursInMonth = 730 // AWS's month for GB-month and hourly prices
	secsInMonth  = hoursInMonth * 3600
)

// Forecast is the cost of a billion points and of a month at the ingest rate, from what
// scale K measured.
type Forecast struct {
	Prices     Prices
	IngestRate float64 // points/s
	// Per point, measured.
	CPUSecPerPoint                                   float64 // sink + run
	SeriesBytesPerPoint, SegBytesPerPoint, KafkaBPP  float64
	PutsPerPoint, GetsPerPoint, ListsPerPoint        float64
	Rows                                             []CostRow
	LegacyKafka, TailorKafka, KafkaSaved             CostRow
	TotalPerBillion, TotalPerMonth, SavedPerMonthPct float64
	// Life is what compaction and gc change (docs/lifecycle.md): included above, and
	// shown apart here.
	Life LifeCost
}

// LifeCost is what compaction and gc cost and save, from the K× run.
type LifeCost struct {
	// CPUSecPerPoint of compaction and gc (in the compute row).
	CPUSecPerPoint float64
	// Requests per point of compaction and gc (in the request rows).
	PutsPerPoint, GetsPerPoint, ListsPerPoint float64
	// SeriesBytesBefore and After are bytes per point of the serving series files
	// before and after compaction; StorageSaved the month's storage it saves.
	SeriesBytesBefore, SeriesBytesAfter float64
	StorageSaved                        CostRow
	// ReadBefore and ReadAfter are the requests of one read of every point of the store,
	// per billion points; ReadSaved the dollars one such read saves per billion points.
	ReadBefore, ReadAfter Requests
	ReadSaved             float64
	RunsBefore, RunsAfter int
}

// CostRow is one line of the forecast, in dollars.
type CostRow struct {
	Item              string
	PerBillion, Month float64
	Basis             string
}

func forecast(k *Measure, p Prices, rate float64) Forecast {
	f := Forecast{Prices: p, IngestRate: rate}
	pts := float64(k.Points)
	sink, run := k.Stages["sink"], k.Stages["run"]
	compact, gc := stageOr(k, "compact"), stageOr(k, "gc")
	f.CPUSecPerPoint = (sink.CPU + run.CPU + compact.CPU + gc.CPU) / pts
	// The month's series files are the compacted ones.
	f.SeriesBytesPerPoint = float64(run.OutBytes) / pts
	if k.Life.SeriesBytesAfter > 0 {
		f.SeriesBytesPerPoint = float64(k.Life.SeriesBytesAfter) / pts
	}
	f.SegBytesPerPoint = float64(sink.OutBytes) / pts
	f.KafkaBPP = float64(k.Stages["produce"].OutBytes) / pts
	req := Requests{sink.Requests.Put + run.Requests.Put, sink.Requests.Get + run.Requests.Get, sink.Requests.List + run.Requests.List}
	life := Requests{compact.Requests.Put + gc.Requests.Put, compact.Requests.Get + gc.Requests.Get, compact.Requests.List + gc.Requests.List}
	req = Requests{req.Put + life.Put, req.Get + life.Get, req.List + life.List}
	f.PutsPerPoint, f.GetsPerPoint, f.ListsPerPoint = float64(req.Put)/pts, float64(req.Get)/pts, float64(req.List)/pts
	l := &f.Life
	l.CPUSecPerPoint = (compact.CPU + gc.CPU) / pts
	l.PutsPerPoint, l.GetsPerPoint, l.ListsPerPoint = float64(life.Put)/pts, float64(life.Get)/pts, float64(life.List)/pts
	l.SeriesBytesBefore, l.SeriesBytesAfter = float64(k.Life.SeriesBytesBefore)/pts, float64(k.Life.SeriesBytesAfter)/pts
	l.RunsBefore, l.RunsAfter = k.Life.RunsBefore, k.Life.RunsAfter
	perBillion := func(r Requests) Requests {
		return Requests{int64(float64(r.Put) / pts * 1e9), int64(float64(r.Get) / pts * 1e9), int64(float64(r.List) / pts * 1e9)}
	}
	l.ReadBefore, l.ReadAfter = perBillion(k.Life.ReadBefore), perBillion(k.Life.ReadAfter)
	dollars := func(r Requests) float64 {
		return float64(r.Put+r.List)/1000*p.S3PutPer1000 + float64(r.Get)/1000*p.S3GetPer1000
	}
	l.ReadSaved = dollars(l.ReadBefore) - dollars(l.ReadAfter)
	saved := (l.SeriesBytesBefore - l.SeriesBytesAfter) / gib * p.S3StorageGBMonth
	l.StorageSaved = CostRow{"storage saved by compaction, one month", saved * 1e9, saved * rate * secsInMonth,
		fmt.Sprintf("%.2f → %.2f B/point × $%g/GB-month", l.SeriesBytesBefore, l.SeriesBytesAfter, p.S3StorageGBMonth)}

	const billion = 1e9
	month := rate * secsInMonth // points per month
	perB := func(perPoint float64) (float64, float64) { return perPoint * billion, perPoint * month }
	add := func(item, basis string, perPoint float64) {
		b, m := perB(perPoint)
		f.Rows = append(f.Rows, CostRow{item, b, m, basis})
		f.TotalPerBillion += b
		f.TotalPerMonth += m
	}
	add("compute (sink + run + compact + gc)", fmt.Sprintf("%.3g CPU-s/point × $%g/vCPU-h", f.CPUSecPerPoint, p.ComputeVCPUHour),
		f.CPUSecPerPoint/3600*p.ComputeVCPUHour)
	add("storage: series files (compacted), one month", fmt.Sprintf("%.2f B/point × $%g/GB-month", f.SeriesBytesPerPoint, p.S3StorageGBMonth),
		f.SeriesBytesPerPoint/gib*p.S3StorageGBMonth)
	add("storage: segments until deleted", fmt.Sprintf("%.2f B/point × %gh × $%g/GB-month", f.SegBytesPerPoint, p.SegmentRetentionHr, p.S3StorageGBMonth),
		f.SegBytesPerPoint/gib*p.S3StorageGBMonth*p.SegmentRetentionHr/hoursInMonth)
	add("requests: PUT + LIST", fmt.Sprintf("%.3g/point × $%g/1000", f.PutsPerPoint+f.ListsPerPoint, p.S3PutPer1000),
		(f.PutsPerPoint+f.ListsPerPoint)/1000*p.S3PutPer1000)
	add("requests: GET + HEAD", fmt.Sprintf("%.3g/point × $%g/1000", f.GetsPerPoint, p.S3GetPer1000),
		f.GetsPerPoint/1000*p.S3GetPer1000)
	// Kafka holds each point for the retention, times the replication. A billion points
	// held for h hours cost GB × h/730 GB-months; a month of ingest holds rate × h × 3600
	// points at any time, all month.
	kafka := func(item string, hours float64) CostRow {
		gbPerPoint := f.KafkaBPP * p.KafkaReplication / gib
		return CostRow{item,
			billion * gbPerPoint * hours / hoursInMonth * p.KafkaGBMonth,
			rate * hours * 3600 * gbPerPoint * p.KafkaGBMonth,
			fmt.Sprintf("%.1f B/point × %g copies × %gh × $%g/GB-month", f.KafkaBPP, p.KafkaReplication, hours, p.KafkaGBMonth)}
	}
	f.LegacyKafka = kafka("Kafka retention, legacy", p.LegacyKafkaHours)
	f.TailorKafka = kafka("Kafka retention, Tailor (10-min flush)", p.TailorKafkaHours)
	f.KafkaSaved = CostRow{"Kafka retention saved", f.LegacyKafka.PerBillion - f.TailorKafka.PerBillion, f.LegacyKafka.Month - f.TailorKafka.Month,
		fmt.Sprintf("%gh less", p.LegacyKafkaHours-p.TailorKafkaHours)}
	f.TotalPerBillion += f.TailorKafka.PerBillion
	f.TotalPerMonth += f.TailorKafka.Month
	return f
}

// Print writes the report: the growth table, the shards, and the cost forecast.
func (r *Report) Print(w io.Writer) {
	b, k := r.Base, r.K
	fmt.Fprintf(w, "\nTailor load test — %d× vs 1×, %d cores (points/s per core = points / CPU-seconds)\n", k.Scale, r.Cores)
	fmt.Fprintf(w, "  1×: %d series, %d points (%d with redeliveries); %d×: %d series, %d points (%d); check %s / %s\n",
		b.Series, b.Points, b.Produced, k.Scale, k.Series, k.Points, k.Produced, b.Check, k.Check)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "stage\twall 1×\twall %d×\tgrowth\tCPU-s 1×\tCPU-s %d×\tgrowth\tpeak RSS 1×\tpeak RSS %d×\tgrowth\tout 1×\tout %d×\tgrowth\tpts/s/core 1×\tpts/s/core %d×\t\n", k.Scale, k.Scale, k.Scale, k.Scale, k.Scale)
	for _, g := range r.Growth {
		sb, sk := b.Stages[g.Stage], k.Stages[g.Stage]
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%.2f×\t%.2f\t%.2f\t%.2f×\t%s\t%s\t%.2f×\t%s\t%s\t%s\t%.3g\t%.3g\t%s\n",
			g.Stage, sb.Wall, sk.Wall, g.Wall, sb.CPU, sk.CPU, g.CPU, mib(sb.PeakRSS), mib(sk.PeakRSS), g.PeakRSS,
			mib(sb.OutBytes), mib(sk.OutBytes), fmtGrowth(g.OutBytes), g.PointsPerCoreSec[0], g.PointsPerCoreSec[1], flag(g))
	}
	tw.Flush()
	fmt.Fprintf(w, "  points grew %.2f×; a stage is flagged SUPER-LINEAR when its wall or CPU time grew more than %.2f × that.\n", r.Growth[0].Points, SuperLinear)
	if !k.PeakResets {
		fmt.Fprintln(w, "  (the kernel did not allow resetting the peak RSS: peaks are running maxima of the process)")
	}
	if len(r.Slowest) > 0 {
		fmt.Fprintf(w, "  slowest shard windows at %d×:", k.Scale)
		for _, s := range r.Slowest {
			fmt.Fprintf(w, " %s %s %.2fs (%d points);", s.Shard, s.Window, s.Seconds, s.Points)
		}
		fmt.Fprintln(w)
		sk := r.Skewed
		fmt.Fprintf(w, "  most skewed shard at %d×: %s with %d points, %.1f× the mean shard's %.0f (%.2fs vs a mean %.2fs)\n",
			k.Scale, sk.Shard, sk.Points, sk.Ratio, sk.MeanPoints, sk.Seconds, sk.MeanSeconds)
	}
	f := r.Forecast
	fmt.Fprintf(w, "\nCost forecast from the %d× run, at %.3g points/s ingest (%.3g points/month)\n", k.Scale, f.IngestRate, f.IngestRate*secsInMonth)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  item\tper billion points\tper month\tbasis")
	for _, row := range f.Rows {
		fmt.Fprintf(tw, "  %s\t$%.4f\t$%.2f\t%s\n", row.Item, row.PerBillion, row.Month, row.Basis)
	}
	fmt.Fprintf(tw, "  %s\t$%.4f\t$%.2f\t%s\n", f.TailorKafka.Item, f.TailorKafka.PerBillion, f.TailorKafka.Month, f.TailorKafka.Basis)
	fmt.Fprintf(tw, "  total, Tailor\t$%.4f\t$%.2f\t\n", f.TotalPerBillion, f.TotalPerMonth)
	fmt.Fprintf(tw, "  %s\t$%.4f\t$%.2f\t%s\n", f.LegacyKafka.Item, f.LegacyKafka.PerBillion, f.LegacyKafka.Month, f.LegacyKafka.Basis)
	fmt.Fprintf(tw, "  %s\t$%.4f\t$%.2f\t%s\n", f.KafkaSaved.Item, f.KafkaSaved.PerBillion, f.KafkaSaved.Month, f.KafkaSaved.Basis)
	l := f.Life
	fmt.Fprintf(tw, "  %s\t$%.4f\t$%.2f\t%s\n", l.StorageSaved.Item, l.StorageSaved.PerBillion, l.StorageSaved.Month, l.StorageSaved.Basis)
	tw.Flush()
	fmt.Fprintf(w, "  compaction + gc: %.3g CPU-s/point, %.3g PUT + %.3g LIST + %.3g GET per point (in the rows above)\n",
		l.CPUSecPerPoint, l.PutsPerPoint, l.ListsPerPoint, l.GetsPerPoint)
	fmt.Fprintf(w, "  one read of every point, per billion points: %d GET + %d LIST over %d runs before compaction, %d GET + %d LIST over %d runs after compaction and gc ($%.4f saved a read)\n",
		l.ReadBefore.Get, l.ReadBefore.List, l.RunsBefore, l.ReadAfter.Get, l.ReadAfter.List, l.RunsAfter, l.ReadSaved)
}

// stageOr returns the stage's measure, or a zero one when the stage did not run.
func stageOr(k *Measure, name string) *StageMeasure {
	if s := k.Stages[name]; s != nil {
		return s
	}
	return &StageMeasure{}
}

func flag(g Growth) string {
	if g.SuperLinear {
		return "SUPER-LINEAR"
	}
	return ""
}

func fmtGrowth(g float64) string {
	if g == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", g)
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}
