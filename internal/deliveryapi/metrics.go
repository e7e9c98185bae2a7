package deliveryapi

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jmlgate/jmlgate/internal/store"
)

// collectTimeout bounds the store read of one scrape.
const collectTimeout = 5 * time.Second

// queueCollector reads the delivery queue on every scrape.
type queueCollector struct {
	st    store.Store
	names []string
	now   func() time.Time
	depth *prometheus.Desc
	age   *prometheus.Desc
}

// NewQueueCollector returns a collector that, on every scrape, reads
// store.ReadTx.QueueStats in one View and emits
//
//	jmlgate_delivery_queue{connector,state}               pending, running, dead
//	jmlgate_delivery_oldest_pending_age_seconds{connector} 0 when nothing is pending
//
// for every connector in names (zeros when nothing is queued) and every
// other connector that still has deliveries (a connector removed from the
// configuration keeps its dead letters). A failed read is reported to the
// registry as an invalid metric (the scrape then fails) rather than as
// zeros that would look healthy.
func NewQueueCollector(st store.Store, names []string) prometheus.Collector {
	return &queueCollector{
		st:    st,
		names: slices.Clone(names),
		now:   time.Now,
		depth: prometheus.NewDesc("jmlgate_delivery_queue",
			"Deliveries in the queue by connector and state (pending, running, dead).",
			[]string{"connector", "state"}, nil),
		age: prometheus.NewDesc("jmlgate_delivery_oldest_pending_age_seconds",
			"Age of the oldest change a pending delivery covers, by connector; 0 when nothing is pending.",
			[]string{"connector"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	var stats map[string]store.QueueStats
	err := c.st.View(ctx, func(tx store.ReadTx) error {
		var err error
		stats, err = tx.QueueStats(ctx)
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	now := c.now()
	names := slices.Sorted(maps.Keys(stats))
	for _, n := range c.names {
		if _, ok := stats[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		s := stats[n]
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Pending), n, store.DeliveryPending)
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Running), n, store.DeliveryRunning)
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Dead), n, store.DeliveryDead)
		age := 0.0
		if !s.OldestPending.IsZero() {
			age = max(0, now.Sub(s.OldestPending).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, n)
	}
}
