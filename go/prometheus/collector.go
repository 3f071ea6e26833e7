// Package prometheus exports an auditbuf client's counters to Prometheus (client_golang)
// under the names and labels the Rust library uses (Client.MetricsText gives the same
// text without client_golang): kubernaut's pkg/audit names, so its dashboards and alerts
// keep working, plus auditbuf's own. Values are read from Stats() on each scrape: nothing
// is counted twice and recording pays nothing for metrics. This is the only package of
// the module that imports client_golang.
//
//	prometheus.MustRegister(abprom.NewCollector(client, "gateway"))
//
// Every series has the label service; those with reason list every reason, zeros too:
//
//	audit_events_buffered_total           counter  events accepted (Stats.Recorded)
//	audit_events_dropped_total{reason}    counter  events lost: turned away by a record call
//	                                               (queue_full, block_timeout, closed,
//	                                               invalid_utf8, invalid_json,
//	                                               not_an_object, too_large, missing_field,
//	                                               invalid_field, serialize, store_error,
//	                                               store_full) or given up after acceptance
//	                                               (oldest, store_full, shutdown, damaged,
//	                                               failed)
//	audit_events_written_total            counter  events the receiver acknowledged
//	audit_events_dead_lettered_total{reason} counter  refused for good: rejected,
//	                                               too_large, store
//	audit_batches_failed_total            counter  batches whose retries ran out
//	audit_retries_total                   counter  sends answered with a retryable failure
//	audit_buffer_size                     gauge    events queued or in flight
//	audit_backing_store_events            gauge    events waiting in the backing store
//
// Stats does not carry the write-duration histogram, the queue's capacity or the backing
// store's bytes and age: for those, serve Client.MetricsText. auditbuf's extra series:
//
//	auditbuf_events_recovered_total, auditbuf_events_redelivered_total,
//	auditbuf_sends_total, auditbuf_endpoint_refusals_total, auditbuf_events_queued,
//	auditbuf_events_in_flight.
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

type reasonedMetric struct {
	desc    *prom.Desc
	reasons func(s *auditbuf.Stats) []reasoned
}

type reasoned struct {
	reason string
	value  uint64
}

func desc(name, help string, labels ...string) *prom.Desc {
	return prom.NewDesc(name, help, append([]string{"service"}, labels...), nil)
}

func counter(name, help string, value func(s *auditbuf.Stats) uint64) metric {
	return metric{desc(name, help), prom.CounterValue, func(s *auditbuf.Stats) float64 { return float64(value(s)) }}
}

func gauge(name, help string, value func(s *auditbuf.Stats) uint64) metric {
	return metric{desc(name, help), prom.GaugeValue, func(s *auditbuf.Stats) float64 { return float64(value(s)) }}
}

// The help texts are the Rust library's, word for word.
var (
	plain = []metric{
		counter("audit_events_buffered_total", "Events accepted by record (buffered for delivery).",
			func(s *auditbuf.Stats) uint64 { return s.Recorded }),
		counter("audit_events_written_total", "Events the receiver acknowledged (any 2xx).",
			func(s *auditbuf.Stats) uint64 { return s.Delivered }),
		counter("audit_batches_failed_total", "Batches whose retry budget ran out (kept in the backing store, or failed).",
			func(s *auditbuf.Stats) uint64 { return s.BatchesFailed }),
		counter("audit_retries_total", "Sink calls answered with a retryable failure.",
			func(s *auditbuf.Stats) uint64 { return s.Retries }),
		gauge("audit_buffer_size", "Events buffered in memory: queued or being sent.",
			func(s *auditbuf.Stats) uint64 { return s.Queued + s.InFlight }),

		counter("auditbuf_events_recovered_total", "Events found in the backing store when the client opened it.",
			func(s *auditbuf.Stats) uint64 { return s.Recovered }),
		counter("auditbuf_events_redelivered_total", "Events sent again because the store failed to record their delivery.",
			func(s *auditbuf.Stats) uint64 { return s.Redelivered }),
		counter("auditbuf_sends_total", "Batches handed to the sink, retries and split halves included.",
			func(s *auditbuf.Stats) uint64 { return s.Sends }),
		counter("auditbuf_endpoint_refusals_total", "Times the receiver refused every event alone with the same answer (events kept).",
			func(s *auditbuf.Stats) uint64 { return s.EndpointRefusals }),
		gauge("auditbuf_events_queued", "Events accepted and not yet taken by the flush thread.",
			func(s *auditbuf.Stats) uint64 { return s.Queued }),
		gauge("auditbuf_events_in_flight", "Events batched, being sent or waiting for a retry.",
			func(s *auditbuf.Stats) uint64 { return s.InFlight }),
		gauge("audit_backing_store_events", "Events waiting in the backing store.",
			func(s *auditbuf.Stats) uint64 { return s.Stored }),
	}
	withReason = []reasonedMetric{
		{desc("audit_events_dropped_total", "Events lost, by reason: turned away by record (queue_full, block_timeout, bad input...) or given up after being accepted (oldest, store_full, shutdown, damaged, failed).", "reason"),
			droppedBy},
		{desc("audit_events_dead_lettered_total", "Events the receiver refused for good, by reason (rejected: a 4xx for the event alone; too_large: a 413 for the event alone; store: a store row whose claimers kept dying).", "reason"),
			deadLetteredBy},
	}
)

// droppedBy follows the Rust library's reasons: a spill the store refused and an
// accepted event the store could not keep are both store_full.
func droppedBy(s *auditbuf.Stats) []reasoned {
	r, d := s.Rejected, s.Dropped
	return []reasoned{
		{"queue_full", r.QueueFull}, {"block_timeout", r.BlockTimeout}, {"closed", r.Closed},
		{"invalid_utf8", r.InvalidUTF8}, {"invalid_json", r.InvalidJSON},
		{"not_an_object", r.NotAnObject}, {"too_large", r.TooLarge},
		{"missing_field", r.MissingField}, {"invalid_field", r.InvalidField},
		{"serialize", r.Serialize}, {"store_error", r.StoreError},
		{"store_full", r.StoreFull + d.StoreFull}, {"oldest", d.Oldest},
		{"shutdown", d.Shutdown}, {"damaged", d.Damaged}, {"failed", s.Failed},
	}
}

func deadLetteredBy(s *auditbuf.Stats) []reasoned {
	rejected := s.DeadLettered - min(s.DeadLettered, s.DeadLetteredTooLarge+s.DeadLetteredByStore)
	return []reasoned{
		{"rejected", rejected}, {"too_large", s.DeadLetteredTooLarge}, {"store", s.DeadLetteredByStore},
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prom.Desc) {
	for _, m := range plain {
		ch <- m.desc
	}
	for _, m := range withReason {
		ch <- m.desc
	}
}

// Collect reads one snapshot of the counters and sends every metric from it.
func (c *Collector) Collect(ch chan<- prom.Metric) {
	s := c.source.Stats()
	for _, m := range plain {
		ch <- prom.MustNewConstMetric(m.desc, m.kind, m.value(&s), c.service)
	}
	for _, m := range withReason {
		for _, r := range m.reasons(&s) {
			ch <- prom.MustNewConstMetric(m.desc, prom.CounterValue, float64(r.value), c.service, r.reason)
		}
	}
}
