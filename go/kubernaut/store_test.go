package kubernaut_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
	audit "github.com/auditbuf/auditbuf/go/kubernaut"
)

// dataStorage is a DataStorage-style receiver on 127.0.0.1: POST
// /api/v1/audit/events/batch with a JSON array, answered 201.
type dataStorage struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	bad    []string
}

func newDataStorage(t *testing.T) *dataStorage {
	ds := &dataStorage{}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch []map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/audit/events/batch" || dec.Decode(&batch) != nil {
			ds.bad = append(ds.bad, r.Method+" "+r.URL.Path)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ds.events = append(ds.events, batch...)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"event_ids":[],"message":"stored"}`))
	}))
	t.Cleanup(ds.Close)
	return ds
}

func (ds *dataStorage) got() []map[string]any {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]map[string]any(nil), ds.events...)
}

// The Quick Start of kubernaut's pkg/audit README, step by step, with only the import
// changed.
func TestQuickStartOfKubernautsReadme(t *testing.T) {
	ds := newDataStorage(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	// Step 2: Create an Audit Store
	dsClient, err := audit.NewOpenAPIClientAdapter(ds.URL, 5*time.Second)
	if err != nil {
		t.Fatalf("failed to create DataStorage client: %v", err)
	}
	auditStore, err := audit.NewBufferedStore(
		dsClient,
		audit.DefaultConfig(),
		"gateway", // service name for metrics
		logger,
	)
	if err != nil {
		t.Fatalf("failed to create audit store: %v", err)
	}

	// Step 3: Store Audit Events
	payload := map[string]interface{}{
		"signal_fingerprint": "fp-abc123",
		"alert_name":         "PodOOMKilled",
		"namespace":          "production",
	}

	eventData := audit.NewEventData("gateway", "signal_received", "success", payload)
	eventDataJSON, _ := eventData.ToJSON()

	event := audit.NewAuditEvent()
	event.EventType = "gateway.signal.received"
	event.EventCategory = "signal"
	event.EventAction = "received"
	event.EventOutcome = "success"
	event.ActorType = "service"
	event.ActorID = "gateway"
	event.ResourceType = "Signal"
	event.ResourceID = "fp-abc123"
	event.CorrelationID = "remediation-123"
	event.EventData = eventDataJSON

	if err := auditStore.StoreAudit(ctx, event); err != nil {
		logger.Error("Failed to buffer audit event", "error", err)
		t.Fatal(err)
	}

	// Step 4: Graceful Shutdown
	if err := auditStore.Close(); err != nil {
		logger.Error("Failed to close audit store", "error", err)
		t.Fatal(err)
	}
	if err := auditStore.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	got := ds.got()
	if len(got) != 1 || len(ds.bad) != 0 {
		t.Fatalf("DataStorage got %d events, bad requests %v", len(got), ds.bad)
	}
	e := got[0]
	want := map[string]string{
		"version": "1.0", "event_type": "gateway.signal.received", "event_category": "signal",
		"event_action": "received", "event_outcome": "success", "actor_type": "service",
		"actor_id": "gateway", "resource_type": "Signal", "resource_id": "fp-abc123",
		"correlation_id": "remediation-123",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %v, want %q", k, e[k], v)
		}
	}
	if e["retention_days"] != json.Number("2555") || e["is_sensitive"] != false {
		t.Errorf("defaults: %v", e)
	}
	if _, ok := e["event_id"]; ok {
		t.Error("event_id must not be sent: the server assigns it")
	}
	ts, _ := e["event_timestamp"].(string)
	if stamp, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") ||
		time.Since(stamp) > time.Minute || len(ts) != 24 {
		t.Errorf("event_timestamp %q", ts)
	}
	data := e["event_data"].(map[string]any)
	if data["event_type"] != "gateway.signal.received" || data["service"] != "gateway" ||
		data["payload"].(map[string]any)["alert_name"] != "PodOOMKilled" {
		t.Errorf("event_data %v", data)
	}
	if s := auditStore.Stats(); s.Delivered != 1 || !s.IsConsistent() {
		t.Errorf("stats %+v", s)
	}
}

// The README's "Complete Example": a gateway with an AuditStore field, optional
// fields by pointer, a source payload, and Shutdown.
type Gateway struct {
	auditStore audit.AuditStore
	logger     *slog.Logger
}

type Signal struct {
	Fingerprint, AlertName, Namespace, RemediationID string
	IsDuplicate                                      bool
	OriginalPayload                                  map[string]interface{}
}

func (g *Gateway) auditSignalReceived(ctx context.Context, signal *Signal, crdName string) {
	payload := map[string]interface{}{
		"signal_fingerprint": signal.Fingerprint,
		"alert_name":         signal.AlertName,
		"namespace":          signal.Namespace,
		"is_duplicate":       signal.IsDuplicate,
		"action":             "created_crd",
		"crd_name":           crdName,
	}
	eventData := audit.NewEventData("gateway", "signal_received", "success", payload)
	eventData.WithSourcePayload(signal.OriginalPayload)
	eventDataJSON, _ := eventData.ToJSON()

	event := audit.NewAuditEvent()
	event.EventType = "gateway.signal.received"
	event.EventCategory = "signal"
	event.EventAction = "received"
	event.EventOutcome = "success"
	event.ActorType = "service"
	event.ActorID = "gateway"
	event.ResourceType = "Signal"
	event.ResourceID = signal.Fingerprint
	event.CorrelationID = signal.RemediationID
	event.Namespace = &signal.Namespace
	event.EventData = eventDataJSON

	if err := g.auditStore.StoreAudit(ctx, event); err != nil {
		g.logger.Error("Failed to buffer audit event", "error", err)
	}
}

func TestCompleteExampleOfKubernautsReadme(t *testing.T) {
	ds := newDataStorage(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	auditStore, err := audit.NewBufferedStore(audit.DataStorageURL(ds.URL),
		audit.RecommendedConfig("gateway"), "gateway", logger)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{auditStore: auditStore, logger: logger}
	for i := 0; i < 1200; i++ {
		g.auditSignalReceived(context.Background(), &Signal{
			Fingerprint: fmt.Sprint("fp-", i), AlertName: "HighMemoryUsage", Namespace: "payment",
			RemediationID: fmt.Sprint("rr-", i), OriginalPayload: map[string]interface{}{"raw": i},
		}, "rr-crd")
	}
	if err := g.auditStore.Close(); err != nil {
		t.Fatal(err)
	}
	got := ds.got()
	if len(got) != 1200 {
		t.Fatalf("DataStorage got %d of 1200", len(got))
	}
	seen := map[string]bool{}
	for _, e := range got {
		seen[e["correlation_id"].(string)] = true
		if e["namespace"] != "payment" {
			t.Fatalf("namespace: %v", e)
		}
		src := e["event_data"].(map[string]any)["source_payload"].(map[string]any)
		if src["raw"] == nil {
			t.Fatalf("source payload: %v", e)
		}
	}
	if len(seen) != 1200 {
		t.Fatalf("%d distinct events", len(seen))
	}
}

func TestStoreAuditErrors(t *testing.T) {
	block := make(chan struct{})
	var mu sync.Mutex
	var batches [][][]byte
	sink := audit.BatchFunc(func(ctx context.Context, events [][]byte) error {
		<-block
		mu.Lock()
		batches = append(batches, events)
		mu.Unlock()
		return nil
	})
	cfg := audit.DefaultConfig()
	cfg.BufferSize, cfg.BatchSize = 4, 1
	store, err := audit.NewBufferedStore(sink, cfg, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := func(id string) *audit.AuditEvent {
		e := audit.NewAuditEvent()
		e.EventType, e.EventCategory, e.EventAction, e.EventOutcome = "svc.thing.done", "thing", "done", "success"
		e.ActorType, e.ActorID, e.ResourceType, e.ResourceID = "service", "svc", "Thing", id
		e.CorrelationID, e.EventData = id, []byte(`{"k":"v"}`)
		return e
	}
	missing := ev("a")
	missing.ActorID = ""
	if err := store.StoreAudit(ctx, missing); !errors.Is(err, auditbuf.ErrMissingField) || !strings.Contains(err.Error(), "actor_id") {
		t.Fatalf("missing actor_id: %v", err)
	}
	badJSON := ev("b")
	badJSON.EventData = []byte(`{"k":`)
	if err := store.StoreAudit(ctx, badJSON); !errors.Is(err, auditbuf.ErrInvalidJSON) {
		t.Fatalf("bad event_data: %v", err)
	}
	var full error
	for i := 0; i < 50 && full == nil; i++ {
		full = store.StoreAudit(ctx, ev(fmt.Sprint("c", i)))
	}
	if !errors.Is(full, auditbuf.ErrFull) || !strings.Contains(full.Error(), "audit buffer full") {
		t.Fatalf("full: %v", full)
	}
	close(block)
	if err := store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.StoreAudit(ctx, ev("late")); !errors.Is(err, auditbuf.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	s := store.Stats()
	if s.Rejected.InvalidJSON != 1 || s.Rejected.QueueFull != 1 || s.Delivered != s.Recorded || !s.IsConsistent() {
		t.Fatalf("stats %+v", s)
	}
}

func TestConfig(t *testing.T) {
	if c := audit.DefaultConfig(); c.BufferSize != 10000 || c.BatchSize != 1000 ||
		c.FlushInterval != time.Second || c.MaxRetries != 3 {
		t.Fatalf("DefaultConfig %+v", c)
	}
	if audit.RecommendedConfig("gateway").BufferSize != 30000 || audit.RecommendedConfig("datastorage").BufferSize != 50000 {
		t.Fatal("RecommendedConfig")
	}
	if err := (audit.Config{BufferSize: 1, BatchSize: 2, FlushInterval: time.Second}).Validate(); err == nil {
		t.Fatal("batch larger than buffer accepted")
	}
	// An invalid configuration falls back to the defaults, as kubernaut's does.
	store, err := audit.NewBufferedStore(audit.BatchFunc(func(context.Context, [][]byte) error { return nil }),
		audit.Config{}, "svc", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.NewBufferedStore(nil, audit.DefaultConfig(), "svc", nil); err == nil {
		t.Fatal("nil client accepted")
	}
	if _, err := audit.NewOpenAPIClientAdapter("", time.Second); err == nil {
		t.Fatal("empty URL accepted")
	}
}

func TestStoreAuditAllocatesNothing(t *testing.T) {
	cfg := audit.DefaultConfig()
	cfg.BufferSize, cfg.BatchSize = 100_000, 500
	store, err := audit.NewBufferedStore(audit.BatchFunc(func(context.Context, [][]byte) error { return nil }),
		cfg, "svc", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ns, dur := "payment", 42
	parent := time.Now()
	e := audit.NewAuditEvent()
	e.EventType, e.EventCategory, e.EventAction, e.EventOutcome = "gateway.signal.received", "signal", "received", "success"
	e.ActorType, e.ActorID, e.ResourceType, e.ResourceID = "service", "gateway", "Signal", "fp-abc123"
	e.CorrelationID, e.Namespace, e.DurationMs, e.ParentEventDate = "rr-1", &ns, &dur, &parent
	e.EventData = []byte(`{"signal_type":"alert"}`)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := store.StoreAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	n := testing.AllocsPerRun(2000, func() {
		if err := store.StoreAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("StoreAudit: %v allocations per call, want 0", n)
	}
}
