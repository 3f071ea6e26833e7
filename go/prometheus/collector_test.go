package prometheus_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
	abprom "github.com/auditbuf/auditbuf/go/prometheus"
	prom "github.com/prometheus/client_golang/prometheus"
)

func TestKubernautMetricNamesFromStats(t *testing.T) {
	client, err := auditbuf.NewWithSink(auditbuf.Config{Service: "gateway", QueueCapacity: 4},
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
		"audit_events_buffered_total":                3,
		"audit_events_written_total":                 3,
		"audit_events_dropped_total{not_an_object}":  1,
		"audit_events_dropped_total{queue_full}":     0,
		"audit_events_dropped_total{oldest}":         0,
		"audit_events_dead_lettered_total{rejected}": 0,
		"audit_batches_failed_total":                 0,
		"audit_buffer_size":                          0,
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
	// Every audit_* series the collector exports is in the library's own text, with the
	// same value: one set of names for Rust, C, Go and Python.
	text := parseText(t, client.MetricsText())
	for name, v := range values {
		if !strings.HasPrefix(name, "audit_") {
			continue
		}
		if got, ok := text[name]; !ok || got != v {
			t.Errorf("%s: collector %v, MetricsText %v (present %v)", name, v, got, ok)
		}
	}
	for _, name := range []string{"audit_write_duration_seconds_count", "audit_buffer_capacity"} {
		if _, ok := text[name]; !ok {
			t.Errorf("MetricsText lacks %s:\n%s", name, client.MetricsText())
		}
	}
	if _, err := client.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// After Close the collector still reports the final counters.
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

var sample = regexp.MustCompile(`^([a-z0-9_]+)\{service="gateway"(?:,reason="([a-z0-9_]+)")?(?:,le="[^"]+")?\} (\S+)$`)

// parseText reads the classic text format into name{reason} -> value (buckets skipped).
func parseText(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "le=") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		name := m[1]
		if m[2] != "" {
			name += "{" + m[2] + "}"
		}
		out[name] = v
	}
	return out
}
