// Package promtest holds the tests and the benchmark that need Prometheus' own tsdb
// package: reading the TSDB of a real Prometheus server after it remote-wrote to the
// gateway, writing legacy blocks for the migration test, and Prometheus' block writer
// beside export in make bench-export.
//
// It is a module of its own because the tsdb package imports Prometheus' service
// discovery and remote storage, and with them the AWS, Azure and Google Cloud SDKs,
// gRPC and OpenTelemetry (about 400 packages): as a test dependency of the main module
// they would all enter its go.mod and go.sum. The product itself uses only Prometheus'
// small format packages (prompb, tsdb/index, tsdb/chunks, tsdb/chunkenc,
// tsdb/tombstones, model/labels). See docs/prometheus.md.
package promtest
