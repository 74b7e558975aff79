package encoder

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// Frozen files of older format versions live in testdata/series/v<N>/ at the repository
// root. Each <name>.tsf has a <name>.points.txt beside it listing what it must decode to.
// They were produced by `go test ./encoder/ -run TestFixtures -update-fixtures` from the
// generators in fixtureInputs, with the writer of that time and FormatVersion(N). Never
// regenerate an old version's files: they prove that today's reader still reads them.
var updateFixtures = flag.Bool("update-fixtures", false, "rewrite testdata/series fixtures of the current version")

const fixtureRoot = "testdata/series"

// fixtureInputs are the contents of the frozen files, by name.
func fixtureInputs() map[string][]testSeries {
	ef := edgeFloats()
	edge := []testSeries{
		{Key: columnar.SeriesKey{}, Tags: []string{"host:a", "", "utf8:é✓"}, Ts: []int64{math.MinInt64, -1, 0, math.MaxInt64}, Values: ef[:4]},
		{Key: columnar.SeriesKey{Org: 7, Metric: 1 << 63, Context: 12345}, Ts: make([]int64, len(ef)), Values: ef},
		{Key: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64}, Ts: []int64{1700000000000}, Values: []float64{math.NaN()}},
	}
	for i := range edge[1].Ts {
		edge[1].Ts[i] = 1700000000000 + int64(i*i)*997
	}
	return map[string][]testSeries{
		"empty":  nil,
		"edge":   edge,
		"random": randomSeries(rand.New(rand.NewPCG(11, 13)), 12, 300),
		"shared": scrapeSeries(rand.New(rand.NewPCG(3, 5)), 3, 6, 250),
		"kinds":  valueKinds(rand.New(rand.NewPCG(7, 7)), 250),
	}
}

// valueKinds is one series for each kind of values that a v3 encoding is for: few
// distinct full-precision averages (dict), full-precision doubles (alp-rd), a slow
// full-precision walk (bits-delta), a repeating pattern of full-precision values (raw
// planes through zstd), short decimals (decimal), a mix of NaN payloads, and a 2-decimal
// counter of small steps with rare jumps (decimal planes through zstd).
func valueKinds(rng *rand.Rand, n int) []testSeries {
	counter := 100.0
	gen := []func(i int) float64{
		func(int) float64 { return []float64{0.2, 0.4666666666666667, 1.0 / 15, 2.6}[rng.IntN(4)] },
		func(int) float64 { return 16 + 16*rng.Float64() },
		func(i int) float64 { return 87 + math.Sin(float64(i)/40)/1000 + rng.Float64()/1e9 },
		func(i int) float64 { return math.Sqrt(float64(2 + i%23)) },
		func(int) float64 { return float64(rng.IntN(10000)) / 100 },
		func(i int) float64 { return []float64{math.NaN(), staleNaN, 1, math.Inf(-1)}[i%4] },
		func(int) float64 {
			step := 1 + rng.IntN(4)
			if rng.IntN(20) == 0 {
				step = rng.IntN(25000)
			}
			counter = math.Round(counter*100+float64(step)) / 100
			return counter
		},
	}
	out := make([]testSeries, len(gen))
	for k, g := range gen {
		s := testSeries{Key: columnar.SeriesKey{Org: 3, Metric: uint64(k)}, Tags: []string{"kind:" + strconv.Itoa(k)}}
		for i := range n {
			s.Ts = append(s.Ts, 1_763_942_400_000+int64(i)*10_000)
			s.Values = append(s.Values, g(i))
		}
		out[k] = s
	}
	return out
}

// staleNaN is Prometheus' staleness marker, a NaN with a payload.
var staleNaN = math.Float64frombits(0x7ff0000000000002)

// fixtureOpts are the writer options the fixtures of each version were made with, and
// fixtureNames the files of each version (later versions add inputs for what they add).
var (
	fixtureOpts = map[uint16][]Opt{
		Version1: {FormatVersion(Version1), BlockPoints(100)},
		Version2: {FormatVersion(Version2), BlockPoints(100)},
		Version3: {FormatVersion(Version3), BlockPoints(100)},
	}
	fixtureNames = map[uint16][]string{
		Version1: {"empty", "edge", "random"},
		Version2: {"empty", "edge", "random"},
		Version3: {"empty", "edge", "random", "shared", "kinds"},
	}
)

func TestFixtures(t *testing.T) {
	for v, opts := range fixtureOpts {
		dir := filepath.Join(fixtureRoot, fmt.Sprintf("v%d", v))
		for _, name := range fixtureNames[v] {
			series := fixtureInputs()[name]
			t.Run(fmt.Sprintf("v%d/%s", v, name), func(t *testing.T) {
				path := filepath.Join(dir, name+".tsf")
				if *updateFixtures && v == CurrentVersion {
					writeFixture(t, path, series, opts)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				r, err := Open(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				if r.Version() != v {
					t.Fatalf("version %d, want %d", r.Version(), v)
				}
				want := readPoints(t, strings.TrimSuffix(path, ".tsf")+".points.txt")
				requireSameSeries(t, want, decodeFile(t, b))
				// This version's writer still produces these exact bytes: outputs are
				// byte-identical across runs and releases.
				if again := encodeFile(t, want, opts...); !bytes.Equal(again, b) {
					t.Fatalf("re-encoding with %v differs from the frozen file", opts)
				}
			})
		}
	}
}

func writeFixture(t *testing.T, path string, series []testSeries, opts []Opt) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, encodeFile(t, series, opts...), 0o644); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("# org metric context ts value-bits(hex) tags(quoted, space separated)\n")
	for _, s := range series {
		for i := range s.Ts {
			fmt.Fprintf(&sb, "%d %d %d %d %016x", s.Key.Org, s.Key.Metric, s.Key.Context, s.Ts[i], math.Float64bits(s.Values[i]))
			for _, tag := range s.Tags {
				fmt.Fprintf(&sb, " %q", tag)
			}
			sb.WriteByte('\n')
		}
	}
	if err := os.WriteFile(strings.TrimSuffix(path, ".tsf")+".points.txt", []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readPoints(t *testing.T, path string) []testSeries {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []testSeries
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		var k columnar.SeriesKey
		var ts int64
		var bits uint64
		var rest string
		n, _ := fmt.Sscanf(line, "%d %d %d %d %x", &k.Org, &k.Metric, &k.Context, &ts, &bits)
		if n != 5 {
			t.Fatalf("%s: bad line %q", path, line)
		}
		if i := nthField(line, 5); i >= 0 {
			rest = line[i:]
		}
		if len(out) == 0 || out[len(out)-1].Key != k {
			s := testSeries{Key: k}
			for rest != "" {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					t.Fatalf("%s: bad tags %q", path, rest)
				}
				tag, _ := strconv.Unquote(q)
				s.Tags = append(s.Tags, tag)
				rest = strings.TrimPrefix(rest[len(q):], " ")
			}
			out = append(out, s)
		}
		s := &out[len(out)-1]
		s.Ts = append(s.Ts, ts)
		s.Values = append(s.Values, math.Float64frombits(bits))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// nthField returns the byte offset of the n-th (0-based) space-separated field, or -1.
func nthField(s string, n int) int {
	for i := 0; n > 0; i++ {
		if i == len(s) {
			return -1
		}
		if s[i] == ' ' {
			n--
			if n == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// TestFixturesCoverV3 checks that the frozen v3 files hold every value encoding v3 added
// and shared blocks, so that a reader that lost one of them fails TestFixtures.
func TestFixturesCoverV3(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range fixtureNames[Version3] {
		b, err := os.ReadFile(filepath.Join(fixtureRoot, "v3", name+".tsf"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Index() {
			bi, err := r.BlockInfo(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range bi {
				seen[x.ValueEncoding.String()] = true
				seen[x.TsEncoding.String()] = true
				if x.Columns > 1 {
					seen["shared"] = true
				}
			}
		}
	}
	for _, want := range []string{"dict", "dict+zstd", "alp-rd", "bits-delta", "raw+zstd", "decimal", "decimal+zstd", "gorilla", "const", "shared",
		"delta-const", "delta-rle", "delta-packed", "delta-packed+zstd", "dod"} {
		if !seen[want] {
			t.Errorf("no v3 fixture holds %s", want)
		}
	}
}
