package storage

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// s3Metrics are the S3 store's Prometheus metrics. Several stores may share one
// Registerer: the second one reuses the collectors the first registered, so the counts
// add up per process.
type s3Metrics struct {
	requests        *prometheus.CounterVec // op, outcome
	retries         *prometheus.CounterVec // op, reason
	budgetExhausted *prometheus.CounterVec // op
	backoffSeconds  prometheus.Counter
	uploadedBytes   prometheus.Counter
	readBytes       prometheus.Counter
	multipart       *prometheus.CounterVec // result: completed, aborted, abort_failed, exists
	multipartActive prometheus.Gauge
	poolInUse       prometheus.Gauge
	poolCap         prometheus.Gauge
}

func newS3Metrics(reg prometheus.Registerer) *s3Metrics {
	m := &s3Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailor_storage_s3_requests_total",
			Help: "S3 requests by operation and outcome (ok, exists, not_found, auth, retry, error).",
		}, []string{"op", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailor_storage_s3_retries_total",
			Help: "S3 request retries by operation and reason (slowdown, throttled, 5xx, timeout, conn_reset).",
		}, []string{"op", "reason"}),
		budgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailor_storage_s3_retry_budget_exhausted_total",
			Help: "S3 operations that spent their whole retry budget and returned a transient error to the caller.",
		}, []string{"op"}),
		backoffSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailor_storage_s3_backoff_seconds_total",
			Help: "Time spent sleeping between S3 retries.",
		}),
		uploadedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailor_storage_s3_uploaded_bytes_total",
			Help: "Bytes of objects and parts uploaded successfully.",
		}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailor_storage_s3_read_bytes_total",
			Help: "Bytes read from S3 object bodies.",
		}),
		multipart: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailor_storage_s3_multipart_uploads_total",
			Help: "Finished multipart uploads by result: completed, exists (conditional complete lost), aborted, abort_failed (left for the bucket lifecycle rule).",
		}, []string{"result"}),
		multipartActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailor_storage_s3_multipart_uploads_active",
			Help: "Multipart uploads in progress.",
		}),
		poolInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailor_storage_buffer_pool_in_use_buffers",
			Help: "Upload part buffers taken from the buffer pool.",
		}),
		poolCap: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailor_storage_buffer_pool_capacity_buffers",
			Help: "Upload part buffers the buffer pool may hand out.",
		}),
	}
	if reg == nil {
		return m
	}
	m.requests = register(reg, m.requests)
	m.retries = register(reg, m.retries)
	m.budgetExhausted = register(reg, m.budgetExhausted)
	m.backoffSeconds = register(reg, m.backoffSeconds)
	m.uploadedBytes = register(reg, m.uploadedBytes)
	m.readBytes = register(reg, m.readBytes)
	m.multipart = register(reg, m.multipart)
	m.multipartActive = register(reg, m.multipartActive)
	m.poolInUse = register(reg, m.poolInUse)
	m.poolCap = register(reg, m.poolCap)
	return m
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A different collector under one of our names is a programmer error in cmd/.
		panic("BUG: register storage metrics: " + err.Error())
	}
	return c
}
