package auditbuf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Flush, Close and the end of a client's life are tested in lifecycle_test.go.

func TestDataStorageSinkDeliversTypedAndJSONEvents(t *testing.T) {
	r := newReceiver(t, false)
	c, err := New(Config{Service: "gateway", Sink: DataStorageSink(r.srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(sampleEvent("rr-1")); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordJSON([]byte(`{"event_type":"user.login","user":"ada"}`)); err != nil {
		t.Fatal(err)
	}
	n, err := c.RecordBatch([]*Event{sampleEvent("rr-2"), sampleEvent("rr-3")})
	if n != 2 || err != nil {
		t.Fatalf("RecordBatch = %d, %v", n, err)
	}
	n, err = c.RecordJSONBatch([][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)})
	if n != 2 || err != nil {
		t.Fatalf("RecordJSONBatch = %d, %v", n, err)
	}
	report, err := c.Flush(ctxFor(t, 10*time.Second))
	if err != nil || !report.Completed || report.Stats.Delivered != 6 {
		t.Fatalf("Flush = %+v, %v", report, err)
	}
	report = mustClose(t, c)
	if report.Stats.Delivered != 6 || report.Stats.Recorded != 6 || report.Left != 0 {
		t.Fatalf("report %+v", report)
	}
	got := r.got()
	if len(got) != 6 {
		t.Fatalf("receiver got %d events", len(got))
	}
	for path := range r.paths {
		if path != "/api/v1/audit/events/batch" {
			t.Errorf("posted to %s", path)
		}
	}
	var first map[string]any
	if err := json.Unmarshal(got[0], &first); err != nil {
		t.Fatal(err)
	}
	if first["correlation_id"] != "rr-1" || first["duration_ms"] != float64(42) {
		t.Errorf("first event %s", got[0])
	}
	data := first["event_data"].(map[string]any)
	if data["event_type"] != "gateway.signal.received" {
		t.Errorf("event_data %v", data)
	}
}

func TestStatusCodesMapToSentinels(t *testing.T) {
	want := map[uint32]error{
		1: ErrNotDurable, 10: ErrFull, 11: ErrTimeout, 12: ErrClosed, 13: ErrForked,
		14: ErrInvalidUTF8, 15: ErrInvalidJSON, 16: ErrNotAnObject, 17: ErrTooLarge,
		18: ErrMissingField, 19: ErrInvalidField, 20: ErrSerialize, 21: ErrStoreFull,
		22: ErrStore, 30: ErrConfig, 31: ErrIO, 32: ErrSpawn, 100: ErrNullParameter,
		101: ErrInvalidParameter, 102: ErrPanic,
	}
	for code, sentinel := range want {
		err := errorOf(code, "the message")
		if !errors.Is(err, sentinel) {
			t.Errorf("code %d: %v is not %v", code, err, sentinel)
		}
		for other, s := range want {
			if other != code && errors.Is(err, s) {
				t.Errorf("code %d is also %v", code, s)
			}
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != code || !strings.HasSuffix(err.Error(), ": the message") {
			t.Errorf("code %d: %#v", code, err)
		}
		if name := e.Name(); !strings.HasPrefix(name, "AUDITBUF_") || name == "AUDITBUF_UNKNOWN" {
			t.Errorf("code %d: name %s", code, name)
		}
	}
	if errorOf(0, "") != nil {
		t.Error("status 0 is not an error")
	}
	if err := errorOf(77, "x"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown code: %v", err)
	}
	if !Accepted(nil) || !Accepted(errorOf(1, "sync failed")) || Accepted(errorOf(10, "")) {
		t.Error("Accepted")
	}
}

func TestEveryRejectionReturnsItsSentinelAndIsCounted(t *testing.T) {
	c, err := New(Config{MaxEventBytes: 1024, Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(err, want error, text string) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		if !strings.Contains(err.Error(), text) {
			t.Fatalf("%q does not contain %q", err.Error(), text)
		}
	}
	check(c.RecordJSON([]byte("{\"a\":\"\xc3\x28\"}")), ErrInvalidUTF8, "UTF-8 at byte 6")
	check(c.RecordJSON([]byte(`{"a":`)), ErrInvalidJSON, "")
	check(c.RecordJSON(nil), ErrInvalidJSON, "")
	check(c.RecordJSON([]byte(`[1]`)), ErrNotAnObject, "")
	big := append(append([]byte(`{"a":"`), bytes.Repeat([]byte("a"), 2000)...), '"', '}')
	check(c.RecordJSON(big), ErrTooLarge, "max_event_bytes limit of 1024")
	ev := sampleEvent("")
	check(c.Record(ev), ErrMissingField, "correlation_id")
	ev = sampleEvent("rr-1")
	ev.ActorID = "bad \xff byte"
	check(c.Record(ev), ErrInvalidField, "actor_id")
	ev = sampleEvent("rr-1")
	ev.EventData = []byte(`{"event_type":"other"}`)
	check(c.Record(ev), ErrInvalidField, "event_type")
	ev.EventData = []byte(`{"signal_type":`)
	check(c.Record(ev), ErrInvalidJSON, "")
	s := c.Stats()
	r := s.Rejected
	if r.InvalidUTF8 != 1 || r.InvalidJSON != 3 || r.NotAnObject != 1 || r.TooLarge != 1 ||
		r.MissingField != 1 || r.InvalidField != 2 || s.Recorded != 0 {
		t.Fatalf("rejections counted %+v", s)
	}
	mustClose(t, c)
	check(c.RecordJSON([]byte(`{}`)), ErrClosed, "")
}

func TestFullAndBlockTimeout(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{QueueCapacity: 1}, ErrFull},
		{Config{QueueCapacity: 1, Overflow: OverflowBlock, BlockTimeout: time.Millisecond}, ErrTimeout},
	} {
		g := newGate()
		c, err := NewWithSink(tc.cfg, g.hold)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RecordJSON([]byte(`{"n":0}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Flush(ctxFor(t, 0)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("Flush with an expired deadline: %v", err)
		}
		<-g.entered
		accepted, refused := uint64(1), uint64(0)
		for i := 0; i < 10; i++ {
			switch err := c.RecordJSON([]byte(`{"n":1}`)); {
			case err == nil:
				accepted++
			case errors.Is(err, tc.want):
				refused++
			default:
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		}
		s := c.Stats()
		got := s.Rejected.QueueFull
		if tc.want == ErrTimeout {
			got = s.Rejected.BlockTimeout
		}
		if refused < 8 || got != refused || s.Recorded != accepted || !s.IsConsistent() {
			t.Fatalf("refused %d, stats %+v", refused, s)
		}
		close(g.open)
		if r := mustClose(t, c); r.Stats.Delivered != accepted {
			t.Fatalf("delivered %d of %d", r.Stats.Delivered, accepted)
		}
	}
}

// Under OverflowDropOldest a full queue evicts its oldest event: every call succeeds, the
// evicted are counted in Dropped.Oldest, the invariant holds, and the metrics say so.
func TestDropOldestEvictsAndStaysConsistent(t *testing.T) {
	g := newGate()
	c, err := NewWithSink(Config{QueueCapacity: 2, Overflow: OverflowDropOldest, GapMarkers: true}, g.hold)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordJSON([]byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	for i := 1; i <= 10; i++ {
		if err := c.RecordJSON([]byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	s := c.Stats()
	if s.Dropped.Oldest < 8 || !s.IsConsistent() {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(c.MetricsText(), fmt.Sprintf(`audit_events_dropped_total{service="auditbuf",reason="oldest"} %d`, s.Dropped.Oldest)) {
		t.Errorf("metrics:\n%s", c.MetricsText())
	}
	close(g.open)
	r := mustClose(t, c)
	if !r.Stats.IsConsistent() || r.Stats.Delivered+r.Stats.Dropped.Oldest != r.Stats.Recorded {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(c.MetricsText(), "audit_events_written_total") {
		t.Errorf("MetricsText after Close: %q", c.MetricsText())
	}
}

// The library's message starts with "invalid configuration: " too: the error says it once.
// An empty URL is sent as written, so that the library says it is empty, not missing.
func TestStoreErrors(t *testing.T) {
	dir := t.TempDir()
	store := &Store{Type: "file", Params: map[string]any{
		"path": dir, "max_total_bytes": 16384, "segment_bytes": 4096, "fsync": "never",
	}}
	retry := func([][]byte) SinkOutcome { return SinkRetry }
	c, err := NewWithSink(Config{MaxEventBytes: 1024, Durability: DurabilityWAL, Store: store}, retry)
	if err != nil {
		t.Fatal(err)
	}
	// A second pipeline on the same directory: the store is locked.
	_, err = NewWithSink(Config{MaxEventBytes: 1024, Store: store}, retry)
	if !errors.Is(err, ErrStore) || !strings.Contains(err.Error(), "LOCK") {
		t.Fatalf("second store: %v", err)
	}
	// In wal mode every event goes to the store; the sink takes none, so it fills up.
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		if err := c.Record(sampleEvent(fmt.Sprint("rr-", i))); err != nil {
			full = err
		}
	}
	if !errors.Is(full, ErrStoreFull) {
		t.Fatalf("got %v, want ErrStoreFull", full)
	}
	if s := c.Stats(); s.Rejected.StoreFull != 1 || !s.IsConsistent() {
		t.Fatalf("stats %+v", s)
	}
	r, _ := c.Close(ctxFor(t, 500*time.Millisecond))
	if !r.Stats.IsConsistent() || r.Stats.Stored == 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestForkedChildIsRefused(t *testing.T) {
	c, err := New(Config{Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	if !c.enter() {
		t.Fatal("closed")
	}
	status := c.n.forkProbe()
	c.leave()
	if err := errorOf(status, ""); !errors.Is(err, ErrForked) {
		t.Fatalf("the child's record returned %d (%v), want ErrForked", status, err)
	}
	// The parent is not affected.
	if err := c.RecordJSON([]byte(`{"event_type":"parent"}`)); err != nil {
		t.Fatal(err)
	}
	if r := mustClose(t, c); r.Stats.Delivered != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestRecordBatchStopsAtTheFirstRefusal(t *testing.T) {
	var col collector
	c, err := NewWithSink(Config{}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	bad := sampleEvent("")
	n, err := c.RecordBatch([]*Event{sampleEvent("a"), sampleEvent("b"), bad, sampleEvent("d")})
	if n != 2 || !errors.Is(err, ErrMissingField) || !strings.Contains(err.Error(), "events[2]") {
		t.Fatalf("RecordBatch = %d, %v", n, err)
	}
	n, err = c.RecordJSONBatch([][]byte{[]byte(`{"a":1}`), []byte(`[]`), []byte(`{}`)})
	if n != 1 || !errors.Is(err, ErrNotAnObject) || !strings.Contains(err.Error(), "events[1]") {
		t.Fatalf("RecordJSONBatch = %d, %v", n, err)
	}
	if n, err := c.RecordBatch(nil); n != 0 || err != nil {
		t.Fatalf("empty batch: %d, %v", n, err)
	}
	r := mustClose(t, c)
	if r.Stats.Delivered != 3 || len(col.got()) != 3 {
		t.Fatalf("report %+v", r)
	}
	if field(col.got()[1], "correlation_id") != "b" {
		t.Fatalf("order: %s", col.got()[1])
	}
}

// 64 goroutines × 10 000 events through HTTP to a receiver on 127.0.0.1: every accepted
// event arrives exactly once, and the counters add up exactly, in every snapshot.
func TestSixtyFourGoroutinesExactAccounting(t *testing.T) {
	const producers, each = 64, 10_000
	r := newReceiver(t, true)
	c, err := New(Config{
		QueueCapacity: 20_000,
		Overflow:      OverflowBlock,
		BlockTimeout:  30 * time.Second,
		Sink:          Sink{Type: SinkHTTP, URL: r.srv.URL, Format: "ndjson"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var accepted, refused atomic.Uint64
	stop := make(chan struct{})
	var snapshots atomic.Uint64
	var bad atomic.Pointer[Stats]
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s := c.Stats(); !s.IsConsistent() {
				bad.Store(&s)
			}
			snapshots.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < producers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 128)
			ev := sampleEvent("")
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("%d-%d", g, i)
				var err error
				if i%2 == 0 {
					ev.CorrelationID = id
					err = c.Record(ev)
				} else {
					buf = append(buf[:0], `{"event_type":"load","correlation_id":"`...)
					buf = append(buf, id...)
					buf = append(buf, `"}`...)
					err = c.RecordJSON(buf)
				}
				if err == nil {
					accepted.Add(1)
				} else {
					refused.Add(1)
					t.Errorf("record %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	report := mustClose(t, c)
	s := report.Stats
	if b := bad.Load(); b != nil {
		t.Fatalf("an inconsistent snapshot: %+v", *b)
	}
	if s.Recorded != accepted.Load() || s.Rejected.Total() != refused.Load() {
		t.Fatalf("recorded %d (accepted %d), rejected %d (refused %d)",
			s.Recorded, accepted.Load(), s.Rejected.Total(), refused.Load())
	}
	if s.Recorded+s.Recovered != s.Delivered+s.DeadLettered+s.Failed+s.Dropped.Total()+s.InFlight+s.Queued+s.Stored {
		t.Fatalf("accounting: %+v", s)
	}
	if s.Delivered != producers*each || s.Recorded != producers*each {
		t.Fatalf("delivered %d, recorded %d", s.Delivered, s.Recorded)
	}
	seen := make(map[string]int, producers*each)
	for _, line := range r.got() {
		seen[field(line, "correlation_id")]++
	}
	if len(seen) != producers*each {
		t.Fatalf("receiver saw %d distinct events of %d", len(seen), producers*each)
	}
	for g := 0; g < producers; g++ {
		for i := 0; i < each; i++ {
			if n := seen[fmt.Sprintf("%d-%d", g, i)]; n != 1 {
				t.Fatalf("event %d-%d arrived %d times", g, i, n)
			}
		}
	}
	t.Logf("%d events, %d requests, %d snapshots checked", s.Delivered, r.requests, snapshots.Load())
}

func TestCallbackSinkOutcomes(t *testing.T) {
	var calls atomic.Int32
	col := &collector{}
	col.script = func(batch [][]byte) SinkOutcome {
		switch n := calls.Add(1); {
		case n == 1:
			return SinkRetry
		case n == 2:
			panic("a sink that panics is retried")
		}
		for _, e := range batch {
			if bytes.Contains(e, []byte("poison")) {
				return SinkRejected
			}
		}
		return SinkDelivered
	}
	c, err := NewWithSink(Config{Retry: Retry{BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond}}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	var events [][]byte
	for i := 0; i < 8; i++ {
		e := fmt.Sprintf(`{"event_type":"x","i":%d}`, i)
		if i == 5 {
			e = `{"event_type":"x","poison":true}`
		}
		events = append(events, []byte(e))
	}
	if n, err := c.RecordJSONBatch(events); n != 8 || err != nil {
		t.Fatalf("RecordJSONBatch = %d, %v", n, err)
	}
	r := mustClose(t, c)
	if r.Stats.Delivered != 7 || r.Stats.DeadLettered != 1 || r.Stats.Retries < 2 {
		t.Fatalf("stats %+v", r.Stats)
	}
	got := col.got()
	if len(got) != 7 {
		t.Fatalf("sink kept %d events", len(got))
	}
	// The batches were copied: what the callback kept is intact after it returned.
	for _, e := range got {
		if !bytes.HasPrefix(e, []byte(`{"version":"1.0","event_timestamp":"`)) ||
			!bytes.HasSuffix(e, []byte(`}`)) || bytes.Contains(e, []byte("poison")) {
			t.Fatalf("kept %q", e)
		}
	}
}

func TestAllocations(t *testing.T) {
	c, err := New(Config{QueueCapacity: 100_000, Overflow: OverflowBlock, BlockTimeout: 10 * time.Second, Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, c)
	doc := []byte(`{"event_type":"gateway.signal.received","correlation_id":"rr-1","n":1}`)
	ev := sampleEvent("rr-1")
	for i := 0; i < 1000; i++ { // warm the pools
		_ = c.RecordJSON(doc)
		_ = c.Record(ev)
	}
	if n := testing.AllocsPerRun(5000, func() {
		if err := c.RecordJSON(doc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("RecordJSON: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(5000, func() {
		if err := c.Record(ev); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("Record: %v allocations per call, want at most 1", n)
	} else {
		t.Logf("Record: %v allocations per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = c.Stats() }); n != 0 {
		t.Errorf("Stats: %v allocations per call, want 0", n)
	}
}

// The library takes 0 for four settings whose Go zero keeps the default: a negative value
// stands for it, and ConfigFromEnv gives one back for an explicit 0.
// Values Rust refuses and a Go struct would take for "keep the default", a misspelt field,
// and a store without its required parameter: ConfigFromEnv gives Rust's own messages,
// naming the variable, before New.

func TestLastErrorSaysWhySendingFails(t *testing.T) {
	// Nothing listens on port 1: every send fails, and the client says why.
	cfg := Config{
		Sink:  HTTPSink("http://user:s3cret@127.0.0.1:1/events"),
		Retry: Retry{MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond},
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.LastError(); e != "" {
		t.Fatalf("LastError before any send = %q", e)
	}
	if err := c.RecordJSON([]byte(`{"event_type":"x"}`)); err != nil {
		t.Fatal(err)
	}
	r, err := c.Flush(context.Background())
	if err != nil || r.Stats.Failed != 1 {
		t.Fatalf("Flush = %+v, %v", r, err)
	}
	e := c.LastError()
	if !strings.Contains(e, "127.0.0.1:1") || strings.Contains(e, "s3cret") {
		t.Fatalf("LastError = %q", e)
	}
	if _, err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-c.Released()
	if after := c.LastError(); after != e {
		t.Fatalf("LastError after Close = %q, want %q", after, e)
	}
}
