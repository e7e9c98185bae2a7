package workflows

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's Prometheus series.
type Metrics struct {
	jobs *prometheus.CounterVec   // by connector and result
	ops  *prometheus.CounterVec   // by connector, op and result
	runs *prometheus.HistogramVec // delivery run time by connector
	ttr  prometheus.Histogram
}

// NewMetrics creates the dispatcher's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jmlgate_deliveries_total",
			Help: "Delivery runs by connector and result (success, retry, dead).",
		}, []string{"connector", "result"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jmlgate_connector_operations_total",
			Help: "Calls to connectors by connector, operation and result (ok or the failure class).",
		}, []string{"connector", "op", "result"}),
		runs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jmlgate_delivery_duration_seconds",
			Help:    "Time one delivery run took, by connector.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"connector"}),
		ttr: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jmlgate_time_to_revoke_seconds",
			Help:    "From the SCIM request that made someone a leaver to the last connector's acknowledgement.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}),
	}
	reg.MustRegister(m.jobs, m.ops, m.runs, m.ttr)
	return m
}

// ObserveTimeToRevoke records one leaver's time-to-revoke; it fits
// Engine.Revoked.
func (m *Metrics) ObserveTimeToRevoke(d time.Duration) { m.ttr.Observe(d.Seconds()) }

func (m *Metrics) observeRun(connector string, d time.Duration) {
	m.runs.WithLabelValues(connector).Observe(d.Seconds())
}

func (m *Metrics) observeOp(connector, op string, err error) {
	result := "ok"
	if err != nil {
		c, _ := classOf(err)
		result = c
	}
	m.ops.WithLabelValues(connector, op, result).Inc()
}

// decodeDoc decodes a stored SCIM document, keeping numbers exact.
func decodeDoc(data []byte) (map[string]any, error) {
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}
