package prometheus_test

import (
	"context"
	"testing"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
	abprom "github.com/auditbuf/auditbuf/go/prometheus"
	prom "github.com/prometheus/client_golang/prometheus"
)

func TestKubernautMetricNamesFromStats(t *testing.T) {
	client, err := auditbuf.NewWithSink(auditbuf.Config{QueueCapacity: 4},
		func([][]byte) auditbuf.SinkOutcome { return auditbuf.SinkDelivered })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := client.RecordJSON([]byte(`{"event_type":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	_ = client.RecordJSON([]byte(`[1]`))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	reg := prom.NewPedanticRegistry()
	reg.MustRegister(abprom.NewCollector(client, "gateway"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] != "gateway" {
				t.Fatalf("%s: labels %v", f.GetName(), labels)
			}
			name := f.GetName()
			if r, ok := labels["reason"]; ok {
				name += "{" + r + "}"
			}
			switch {
			case m.GetCounter() != nil:
				values[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				values[name] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"audit_events_buffered_total":                   3,
		"audit_events_written_total":                    3,
		"audit_events_dropped_total":                    0,
		"audit_batches_failed_total":                    0,
		"audit_buffer_size":                             0,
		"auditbuf_events_rejected_total{not_an_object}": 1,
		"auditbuf_events_rejected_total{queue_full}":    0,
		"auditbuf_events_dropped_total{shutdown}":       0,
		"auditbuf_sends_total":                          values["auditbuf_sends_total"],
	}
	for name, v := range want {
		got, ok := values[name]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	if values["auditbuf_sends_total"] < 1 {
		t.Errorf("sends %v", values["auditbuf_sends_total"])
	}
	if _, err := client.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// After Close the collector still reports the final counters.
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}
