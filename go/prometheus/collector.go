// Package prometheus exports an auditbuf client's counters to Prometheus (client_golang),
// under the metric names of kubernaut's pkg/audit, so its dashboards and alerts keep
// working, plus auditbuf's own. Values are read from Stats() on each scrape: nothing is
// counted twice and recording pays nothing for metrics. This is the only package of the
// module that imports client_golang.
//
//	prometheus.MustRegister(abprom.NewCollector(client, "gateway"))
//
// kubernaut's names, all with the label service:
//
//	audit_events_buffered_total   counter  events accepted (Stats.Recorded)
//	audit_events_dropped_total    counter  events lost: refused because the buffer was full
//	                                       (Rejected.QueueFull + BlockTimeout) or dropped
//	                                       after acceptance (Dropped.Total())
//	audit_events_written_total    counter  events the receiver acknowledged (Delivered)
//	audit_batches_failed_total    counter  events that ran out of retries with no store
//	                                       (Failed) — auditbuf counts events, not batches,
//	                                       so the failure-rate query becomes per event
//	audit_buffer_size             gauge    events buffered: Queued + InFlight
//
// kubernaut's audit_write_duration_seconds histogram is not exported: the library does not
// time writes. auditbuf's own series (label service, and reason where shown):
//
//	auditbuf_events_recovered_total, auditbuf_events_dead_lettered_total,
//	auditbuf_events_failed_total, auditbuf_events_dropped_total{reason},
//	auditbuf_events_rejected_total{reason}, auditbuf_events_redelivered_total,
//	auditbuf_sends_total, auditbuf_retries_total, auditbuf_endpoint_refusals_total,
//	auditbuf_events_queued, auditbuf_events_in_flight, auditbuf_events_stored.
package prometheus

import (
	auditbuf "github.com/auditbuf/auditbuf/go"
	prom "github.com/prometheus/client_golang/prometheus"
)

// Source is anything with the library's counters: *auditbuf.Client, or
// *kubernaut.BufferedStore.
type Source interface {
	Stats() auditbuf.Stats
}

// Collector is a prometheus.Collector reading a Source on each scrape.
type Collector struct {
	source  Source
	service string
}

// NewCollector exports source's counters with the label service="<service>". Register
// one collector per client (two with the same service would collide).
func NewCollector(source Source, service string) *Collector {
	return &Collector{source: source, service: service}
}

type metric struct {
	desc  *prom.Desc
	kind  prom.ValueType
	value func(s *auditbuf.Stats) float64
}

func desc(name, help string, labels ...string) *prom.Desc {
	return prom.NewDesc(name, help, append([]string{"service"}, labels...), nil)
}

var (
	plain = []metric{
		{desc("audit_events_buffered_total", "Total audit events buffered (accepted by the library)."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Recorded) }},
		{desc("audit_events_dropped_total", "Total audit events dropped: refused because the buffer was full, or lost after acceptance."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 {
				return float64(s.Rejected.QueueFull + s.Rejected.BlockTimeout + s.Dropped.Total())
			}},
		{desc("audit_events_written_total", "Total audit events written to storage (acknowledged by the receiver)."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Delivered) }},
		{desc("audit_batches_failed_total", "Audit events whose batch failed after all retries with no backing store (auditbuf counts events, not batches)."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Failed) }},
		{desc("audit_buffer_size", "Current number of buffered audit events (queued and in flight)."),
			prom.GaugeValue, func(s *auditbuf.Stats) float64 { return float64(s.Queued + s.InFlight) }},

		{desc("auditbuf_events_recovered_total", "Events found in the backing store when the client opened it."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Recovered) }},
		{desc("auditbuf_events_dead_lettered_total", "Events the receiver refused for good."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.DeadLettered) }},
		{desc("auditbuf_events_failed_total", "Events whose batch ran out of retries with no backing store."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Failed) }},
		{desc("auditbuf_events_redelivered_total", "Events sent again because the store failed to record their delivery."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Redelivered) }},
		{desc("auditbuf_sends_total", "Batches handed to the sink, retries and split halves included."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Sends) }},
		{desc("auditbuf_retries_total", "Sends answered with a retryable failure."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.Retries) }},
		{desc("auditbuf_endpoint_refusals_total", "Times the receiver refused every event alone with the same answer (events kept)."),
			prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(s.EndpointRefusals) }},
		{desc("auditbuf_events_queued", "Events accepted and not yet taken by the flush thread."),
			prom.GaugeValue, func(s *auditbuf.Stats) float64 { return float64(s.Queued) }},
		{desc("auditbuf_events_in_flight", "Events batched, being sent or waiting for a retry."),
			prom.GaugeValue, func(s *auditbuf.Stats) float64 { return float64(s.InFlight) }},
		{desc("auditbuf_events_stored", "Events in the backing store."),
			prom.GaugeValue, func(s *auditbuf.Stats) float64 { return float64(s.Stored) }},
	}
	dropped  = desc("auditbuf_events_dropped_total", "Events lost after they were accepted, by reason.", "reason")
	rejected = desc("auditbuf_events_rejected_total", "Record calls turned away, by reason.", "reason")
)

func droppedBy(s *auditbuf.Stats) []reasoned {
	d := s.Dropped
	return []reasoned{{"shutdown", d.Shutdown}, {"store_full", d.StoreFull}, {"damaged", d.Damaged}}
}

func rejectedBy(s *auditbuf.Stats) []reasoned {
	r := s.Rejected
	return []reasoned{
		{"queue_full", r.QueueFull}, {"block_timeout", r.BlockTimeout}, {"closed", r.Closed},
		{"invalid_utf8", r.InvalidUTF8}, {"invalid_json", r.InvalidJSON},
		{"not_an_object", r.NotAnObject}, {"too_large", r.TooLarge},
		{"missing_field", r.MissingField}, {"invalid_field", r.InvalidField},
		{"serialize", r.Serialize}, {"store_full", r.StoreFull}, {"store_error", r.StoreError},
	}
}

type reasoned struct {
	reason string
	value  uint64
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prom.Desc) {
	for _, m := range plain {
		ch <- m.desc
	}
	ch <- dropped
	ch <- rejected
}

// Collect reads one snapshot of the counters and sends every metric from it.
func (c *Collector) Collect(ch chan<- prom.Metric) {
	s := c.source.Stats()
	for _, m := range plain {
		ch <- prom.MustNewConstMetric(m.desc, m.kind, m.value(&s), c.service)
	}
	for _, r := range droppedBy(&s) {
		ch <- prom.MustNewConstMetric(dropped, prom.CounterValue, float64(r.value), c.service, r.reason)
	}
	for _, r := range rejectedBy(&s) {
		ch <- prom.MustNewConstMetric(rejected, prom.CounterValue, float64(r.value), c.service, r.reason)
	}
}
