package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	inflight prometheus.Gauge
	records  prometheus.Counter
	samples  prometheus.Counter
}

// newMetrics registers the gateway's metrics with r; nil registers nothing.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailor_gateway_requests_total",
			Help: "Remote-write requests by HTTP status of the answer.",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tailor_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, Kafka's acknowledgement included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailor_gateway_inflight_bytes",
			Help: "Bytes of requests being decoded and of records waiting for Kafka.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailor_gateway_records_total",
			Help: "Kafka records produced and acknowledged.",
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailor_gateway_samples_total",
			Help: "Samples in records Kafka acknowledged.",
		}),
	}
	if r != nil {
		r.MustRegister(m.requests, m.duration, m.inflight, m.records, m.samples)
	}
	return m
}
