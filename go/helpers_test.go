package auditbuf

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// receiver is a collector on 127.0.0.1 that keeps every event it is sent.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	events   [][]byte
	requests int
	paths    map[string]int
}

// newReceiver starts a receiver; ndjson selects the body format it parses (the HTTP
// sink's "ndjson", or a JSON array as the DataStorage sink sends).
func newReceiver(t testing.TB, ndjson bool) *receiver {
	r := &receiver{paths: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var batch [][]byte
		if ndjson {
			for _, line := range bytes.Split(body, []byte{'\n'}) {
				if len(line) > 0 {
					batch = append(batch, line)
				}
			}
		} else {
			var raw []json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			for _, e := range raw {
				batch = append(batch, []byte(e))
			}
		}
		r.mu.Lock()
		r.events = append(r.events, batch...)
		r.requests++
		r.paths[req.URL.Path]++
		r.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"event_ids":[],"message":"ok"}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.events...)
}

// collector is a callback sink that keeps every batch; script, when set, answers instead.
type collector struct {
	mu      sync.Mutex
	events  [][]byte
	batches int
	script  func(batch [][]byte) SinkOutcome
}

func (c *collector) sink(batch [][]byte) SinkOutcome {
	c.mu.Lock()
	script := c.script
	c.batches++
	c.mu.Unlock()
	outcome := SinkDelivered
	if script != nil {
		outcome = script(batch)
	}
	if outcome == SinkDelivered {
		c.mu.Lock()
		c.events = append(c.events, batch...)
		c.mu.Unlock()
	}
	return outcome
}

func (c *collector) got() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.events...)
}

// gate holds the flush thread inside the sink until opened.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) hold([][]byte) SinkOutcome {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	return SinkDelivered
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustClose(t testing.TB, c *Client) Report {
	t.Helper()
	r, err := c.Close(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !r.Stats.IsConsistent() {
		t.Fatalf("inconsistent stats at close: %+v", r.Stats)
	}
	return r
}

func sampleEvent(correlation string) *Event {
	return &Event{
		EventType:     "gateway.signal.received",
		EventCategory: "gateway",
		EventAction:   "received",
		EventOutcome:  "success",
		CorrelationID: correlation,
		ActorType:     "service",
		ActorID:       "gateway",
		ResourceType:  "Signal",
		ResourceID:    "fp-abc123",
		Namespace:     "payment",
		Severity:      "warning",
		DurationMs:    Some[uint64](42),
		EventData: []byte(`{"event_type":"gateway.signal.received","signal_type":"alert",` +
			`"signal_name":"HighMemoryUsage","namespace":"payment","fingerprint":"fp-abc123"}`),
	}
}

// field returns the string value of "name" in a flat JSON line (enough for our events).
func field(line []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(line, key)
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
