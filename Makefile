# Tailor. Every Go command builds with the duckdb_arrow tag: DuckDB's Arrow interface
# lives behind it, and the query package refuses to build without it.
export GOFLAGS := -tags=duckdb_arrow
GO ?= go
BIN := bin/tailor-batch
PKGS := ./...

.PHONY: all build test test-deploy test-prom tools-prom race race-core test-rest bench-once ci fuzz bench bench-reader bench-sink bench-codec bench-s3 bench-gateway bench-export bench-history demo demo-s3 gameday loadtest fmt vet lint tidy tools

all: build

# version and commit for `tailor-batch version`: go build records the commit itself in a
# clone, not in a git worktree, so both are passed (docs/cli.md).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tailor-batch

# The main job end to end on the embedded defaults (kfake broker, local-directory store).
demo: build
	./$(BIN) demo

# The same demo on s3:// against a local S3 server (versitygw from the tool cache, started
# on a free loopback port and stopped at the end). Demo flags: make demo-s3 ARGS="--series 1000".
demo-s3: build tools
	BIN=$(BIN) bash scripts/demo-s3.sh $(ARGS)

# Every game day in full (docs/gameday.md); make test runs the short versions through
# cmd/tailor-batch/internal/gameday's TestShortScenarios.
gameday: build tools
	./$(BIN) gameday all

# 10× load test on this machine's scale: 1M points, then 10M (docs/loadtest.md).
loadtest: build
	./$(BIN) loadtest --scale 10

# Test servers built once from the Go module proxy into a cache (versitygw, a real S3 API).
tools:
	@if [ -f scripts/versitygw.sh ]; then bash scripts/versitygw.sh; fi

# A real Prometheus server and promtool, for the Prometheus tests (docs/prometheus.md):
# about 13-17 minutes cold on 2 cores, nothing when the cache is warm. Apart from tools,
# so that the demos do not wait for it.
tools-prom:
	bash scripts/prometheus.sh

test: tools tools-prom test-deploy test-prom
	$(GO) test -count=1 -timeout 30m $(PKGS)

# The tests that need Prometheus' tsdb package (a real Prometheus remote-writing to the
# gateway, the migration test against blocks Prometheus wrote): their own module keeps
# the tsdb package's cloud SDKs out of the product's dependencies (docs/prometheus.md).
test-prom: tools-prom
	cd promtest && $(GO) test -count=1 -timeout 20m ./...

# The Kubernetes manifests parsed into the API types; its own module keeps k8s.io/api
# out of the product's dependencies.
test-deploy:
	cd deploy && $(GO) test -count=1 ./...

race: tools tools-prom
	$(GO) test -count=1 -race -timeout 45m $(PKGS)

# The packages CI runs under -race: those that share state between goroutines (the
# store's uploads, the readers, the sink, the runs, DuckDB's callers).
RACE_PKGS := ./storage/... ./columnar/... ./encoder/... ./ingest/... ./run/... ./query/...
# The tests of RACE_PKGS that race-core leaves to test-rest: TestKilledLifecycleSteps
# runs compact, delete, retain and gc again after a kill at every write (453
# kills), one code path over and over that the lifecycle's other tests run under -race;
# with it, run's tests took 407 s under -race, without it 102 s, and it alone takes
# 17 s without -race (a loaded 2-core machine).
RACE_SLOW := ^TestKilledLifecycleSteps$$
RACE_SLOW_PKGS := ./run/
race-core: tools
	$(GO) test -count=1 -race -timeout 30m -skip '$(RACE_SLOW)' $(RACE_PKGS)

# Every other test without -race (the other packages, RACE_SLOW, deploy's, promtest's):
# with race-core, CI runs every test of make test once.
test-rest: tools tools-prom test-deploy test-prom
	race="$$($(GO) list $(RACE_PKGS))"; $(GO) test -count=1 -timeout 30m $$($(GO) list $(PKGS) | grep -vxF "$$race")
	$(GO) test -count=1 -timeout 30m -run '$(RACE_SLOW)' $(RACE_SLOW_PKGS)

# Every benchmark once, so that their checks of their own results gate. -short shrinks
# the data of the heavy ones (BenchmarkDiff20M: 2M points instead of 20M).
bench-once: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -short -timeout 30m $(PKGS)

# What .ci/run runs: lint, every test once (race-core under -race, test-rest without),
# every fuzz target for FUZZTIME, every benchmark once.
ci: lint race-core test-rest fuzz bench-once

# Every fuzz target of every package, FUZZTIME each (make fuzz FUZZTIME=60s before
# changing a decoder). -fuzzminimizetime bounds how long the fuzzer minimizes each new
# input it finds, so that a short run spends its time executing inputs.
# Go 1.26's fuzz coordinator can end a run at -fuzztime with a bare "context deadline
# exceeded" that no input caused (golang/go#75804, fixed in Go 1.27): such a run, and
# only such a run (no "Failing input written"), is run once more; any other failure,
# and the same one twice, fails.
FUZZTIME ?= 5s
FUZZ_PKGS ?= $(sort $(dir $(shell grep -l '^func Fuzz' $$(git ls-files '*_test.go'))))
fuzz:
	@set -e; out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for pkg in $(FUZZ_PKGS); do \
		for fn in $$($(GO) test -list '^Fuzz' ./$$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
			rc=0; $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg >$$out 2>&1 || rc=$$?; \
			cat $$out; \
			if [ $$rc -ne 0 ]; then \
				if grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then \
					echo "fuzz $$pkg $$fn: the coordinator's deadline race (golang/go#75804), no input failed: once more"; \
					$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg; \
				else \
					exit $$rc; \
				fi; \
			fi; \
		done; \
	done

bench: bench-reader bench-sink
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./columnar/ ./encoder/ ./ingest/...

# The sink from kfake to the local store (100-point payloads, 8 partitions): points/s,
# payloads/s, points/s per core and peak RSS, against a raw-bytes consumer measured in
# the same run (see ingest/benchsink). SERIES=n scales it (n x 1,000 points).
bench-sink:
	$(GO) run ./ingest/benchsink $(if $(SERIES),-series $(SERIES))

# tailor-batch run --all at its default flags against three ways DuckDB de-duplicates and
# sorts the same 20M points from zstd Parquet into zstd Parquet (bench/run: arg_max over
# the arrival struct, arg_max over a precomputed int64 rank, QUALIFY row_number()); prints
# times, the ratio against the fastest, points/s per core and peak RSS. SCALE=10 runs it
# on 200M points too, with the growth from 1x and the peak-RSS bound. Segments and
# Parquet are written once per scale into $(BENCH_RUN_DIR) and reused.
BENCH_RUN_DIR ?= $(or $(TMPDIR),/tmp)/tailor-bench-run
SCALE ?= 1
.PHONY: bench-run
bench-run: build
	$(GO) build -o bin/bench-run ./bench/run
	./bin/bench-run -bin $(BIN) -dir $(BENCH_RUN_DIR) -scale $(SCALE)

# tailor-batch compact --levels 1d,7d against run --all on the same points: 7 days x 6
# windows x 64 shards with late data (bench/compact); prints points per CPU-second of
# both, the files a one-series 7-day read opens and bytes per point before and after, and
# checks readers read the same points. Segments are written once into $(BENCH_COMPACT_DIR).
# SERIES=n scales it (default 3,200 series, a point a minute: 32M points).
BENCH_COMPACT_DIR ?= $(or $(TMPDIR),/tmp)/tailor-bench-compact
.PHONY: bench-compact
bench-compact: build
	$(GO) build -o bin/bench-compact ./bench/compact
	./bin/bench-compact -bin $(BIN) -dir $(BENCH_COMPACT_DIR) $(if $(SERIES),-series $(SERIES))

# Segment reader against arrow-go's Parquet reader on the same points (NAB and 20M
# synthetic): points/s per core, the ratio, allocations per frame, reader memory. Its own
# module keeps pqarrow's dependencies out of the product's.
bench-reader:
	cd bench/reader && $(GO) run .

# Upload and ranged-read MB/s through Tailor's S3 store beside the aws-sdk-go-v2 transfer
# manager, on the same objects against a local versitygw, with the tailor/manager ratio.
bench-s3: tools
	$(GO) test -run '^$$' -bench 'BenchmarkS3' -benchtime 5x -timeout 20m ./storage/

# The remote-write gateway into kfake: requests/s, samples/s and samples/s per core with
# p50/p99 latency, beside a raw kgo producer of the same bytes (gateway/benchgateway).
bench-gateway:
	$(GO) run ./gateway/benchgateway

# Export's block writer beside Prometheus' tsdb.BlockWriter on the same samples:
# samples/s per core, both read back and compared (promtest/benchexport).
bench-export:
	cd promtest && $(GO) run ./benchexport

# Series file codec against Prometheus XOR and zstd Parquet (BYTE_STREAM_SPLIT and PLAIN)
# on the real data (NAB, and bitbrains and dctraces from ../shared/data/real/more) and
# synthetic kinds, with issue 20's goals; its own module keeps Prometheus out of the
# product's dependencies.
bench-codec:
	cd bench/codec && $(GO) run .

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

# go vet, then staticcheck: built once from the Go module proxy into the tool cache by
# scripts/staticcheck.sh (like versitygw), never a dependency in go.mod.
STATICCHECK ?= $(or $(TAILOR_CACHE),$(HOME)/.cache/tailor)/bin/staticcheck
lint: vet tidy
	bash scripts/staticcheck.sh
	$(STATICCHECK) $(PKGS)
	cd deploy && $(STATICCHECK) ./...
	cd promtest && $(GO) vet ./...

# go.mod and go.sum of every module git tracks are as go mod tidy leaves them (-diff prints what
# tidy would change and fails; it changes nothing). GOFLAGS is cleared: tidy reads every
# build tag anyway, and -tags in GOFLAGS is not a flag of go mod.
tidy:
	for m in $$(git ls-files -- go.mod '*/go.mod' | xargs -n1 dirname); do (cd $$m && GOFLAGS= $(GO) mod tidy -diff) || { echo "$$m: go.mod is not tidy: run go mod tidy there"; exit 1; }; done

# diff of 20M points (series files vs a legacy Parquet copy) beside a plain DuckDB full
# outer join of two Parquet files, same run; prints both times and the ratio (goal <= 1).
# The data is written once under $$TAILOR_BENCH_DIR (default: the temp dir).
.PHONY: bench-diff
bench-diff:
	$(GO) test -run '^$$' -bench 'BenchmarkDiff20M' -benchtime 2x -count 1 -timeout 60m ./query/

# Queries over a month of history (30 days x 4h windows x 64 shards, 2,000 points per
# series-window, late outputs) through the series view, beside the same points as
# hive-partitioned zstd Parquet read by plain DuckDB: (a) one org for one day, (b) one
# series over 30 days, (c) a full scan; time, CPU and bytes read of each, and issue 16's
# goals (bench/history). The data is written once under $(BENCH_HISTORY_DIR).
BENCH_HISTORY_DIR ?= $(or $(TMPDIR),/tmp)/tailor-bench-history
.PHONY: bench-history
bench-history:
	$(GO) run ./bench/history -dir $(BENCH_HISTORY_DIR)
