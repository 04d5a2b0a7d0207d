package broker

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the broker's Prometheus metrics, in a registry of its own (so
// several brokers in one process, as in tests, do not collide).
type metrics struct {
	registry        *prometheus.Registry
	requestDuration *prometheus.HistogramVec // by api
	produceBytes    *prometheus.CounterVec   // by topic
	produceRecords  *prometheus.CounterVec   // by topic
	fetchBytes      *prometheus.CounterVec   // by topic
	backpressure    *prometheus.CounterVec   // by reason
	connections     prometheus.Gauge
}

func newMetrics(b *Broker) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_request_duration_seconds",
			Help:    "Time from reading a request to writing its response, by API.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50µs .. 6.5s
		}, []string{"api"}),
		produceBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_produce_bytes_total", Help: "Record batch bytes appended, by topic.",
		}, []string{"topic"}),
		produceRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_produce_records_total", Help: "Records appended, by topic.",
		}, []string{"topic"}),
		fetchBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_fetch_bytes_total", Help: "Log frame bytes sent to consumers, by topic.",
		}, []string{"topic"}),
		backpressure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_backpressure_total", Help: "Produce requests answered with Backpressure, by reason (broker, topic).",
		}, []string{"reason"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_connections", Help: "Open client connections.",
		}),
	}
	m.registry.MustRegister(m.requestDuration, m.produceBytes, m.produceRecords, m.fetchBytes, m.backpressure, m.connections,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_request_bytes_in_use", Help: "Request bytes held in memory (bounded by MaxRequestBytes).",
		}, func() float64 { return float64(b.requestBytes.InUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_produce_bytes_in_flight", Help: "Produce bytes handed to Raft and not yet committed (bounded by MaxProduceBytes).",
		}, func() float64 { return float64(b.produceBytes.InUse()) }),
		partitionCollector{b},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

var (
	hwDesc      = prometheus.NewDesc("weir_partition_high_watermark", "Offset after the last committed record.", []string{"topic", "partition"}, nil)
	logSizeDesc = prometheus.NewDesc("weir_partition_log_bytes", "Bytes of the partition's log on this node.", []string{"topic", "partition"}, nil)
	leaderDesc  = prometheus.NewDesc("weir_partition_leader", "1 if this node leads the partition and is ready, else 0.", []string{"topic", "partition"}, nil)
)

// partitionCollector reports every hosted replica at scrape time.
type partitionCollector struct{ b *Broker }

func (c partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hwDesc
	ch <- logSizeDesc
	ch <- leaderDesc
}

func (c partitionCollector) Collect(ch chan<- prometheus.Metric) {
	c.b.replicas.mu.RLock()
	defer c.b.replicas.mu.RUnlock()
	for k, r := range c.b.replicas.m {
		p := strconv.Itoa(int(k.partition))
		ch <- prometheus.MustNewConstMetric(hwDesc, prometheus.GaugeValue, float64(r.partition.HighWatermark()), k.topic, p)
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(r.partition.Log().Size()), k.topic, p)
		leader := 0.0
		if r.partition.IsLeader() {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leader, k.topic, p)
	}
}

// HTTPHandler serves /metrics (Prometheus) and /healthz: 200 once the
// metadata group has a leader, 503 before.
func (b *Broker) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if b.controller.LeaderID() == 0 {
			http.Error(w, "no metadata leader yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
