package auditbuf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A sink that records into its own client under OverflowBlock, with the queue full, is
// turned away with ErrFull at once instead of waiting for itself; the accounting holds.
func TestSinkRecordingIntoItsOwnFullBlockQueue(t *testing.T) {
	var client atomic.Pointer[Client]
	var ok, full, closed, other atomic.Int64
	c, err := NewWithSink(Config{
		QueueCapacity: 4, BatchMaxEvents: 2, FlushInterval: time.Millisecond,
		Overflow: OverflowBlock, BlockTimeout: 30 * time.Second,
	}, func(batch [][]byte) SinkOutcome {
		for _, ev := range batch {
			if !strings.Contains(string(ev), `"depth":0`) {
				continue
			}
			for child := 0; child < 3; child++ {
				err := client.Load().RecordJSON([]byte(fmt.Sprintf(`{"depth":1,"child":%d}`, child)))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrFull):
					full.Add(1)
				case errors.Is(err, ErrClosed):
					closed.Add(1)
				default:
					other.Add(1)
				}
			}
		}
		return SinkDelivered
	})
	if err != nil {
		t.Fatal(err)
	}
	client.Store(c)
	started := time.Now()
	for i := 0; i < 20; i++ {
		if err := c.RecordJSON([]byte(fmt.Sprintf(`{"depth":0,"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Flush(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	r := mustClose(t, c)
	if took := time.Since(started); took > 20*time.Second {
		t.Fatalf("the sink waited for itself: %v", took)
	}
	s := r.Stats
	if ok.Load()+full.Load()+closed.Load() != 60 || ok.Load() == 0 || other.Load() != 0 {
		t.Fatalf("ok %d full %d closed %d other %d", ok.Load(), full.Load(), closed.Load(), other.Load())
	}
	if s.Recorded != 20+uint64(ok.Load()) || s.Rejected.QueueFull != uint64(full.Load()) ||
		s.Rejected.Closed != uint64(closed.Load()) || s.Delivered != s.Recorded {
		t.Fatalf("stats %+v (ok %d full %d closed %d)", s, ok.Load(), full.Load(), closed.Load())
	}
}

// Flush and Close called by the client's own sink return at once, not completed; the
// close ends once the sink returns, and the Close made elsewhere reports it.
func TestSinkFlushingAndClosingItsOwnClient(t *testing.T) {
	var client atomic.Pointer[Client]
	type call struct {
		took time.Duration
		err  error
		done bool
	}
	var mu sync.Mutex
	var calls []call
	c, err := NewWithSink(Config{BatchMaxEvents: 100, FlushInterval: 200 * time.Millisecond},
		func(batch [][]byte) SinkOutcome {
			mu.Lock()
			defer mu.Unlock()
			if c := client.Load(); c != nil && len(calls) == 0 {
				for _, do := range []func(context.Context) (Report, error){c.Flush, c.Close} {
					started := time.Now()
					r, err := do(ctxFor(t, 20*time.Second))
					calls = append(calls, call{time.Since(started), err, r.Completed})
				}
			}
			return SinkDelivered
		})
	if err != nil {
		t.Fatal(err)
	}
	// The sink's first call waits for mu: it finds all 10 recorded and the client set.
	mu.Lock()
	for i := 0; i < 10; i++ {
		if err := c.RecordJSON([]byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
	}
	client.Store(c)
	mu.Unlock()
	// The timer sends the batch; the sink's Close comes first.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n == 2 {
			break
		}
	}
	r := mustClose(t, c)
	if !r.Completed || r.Stats.Delivered != 10 {
		t.Fatalf("report %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("calls %+v", calls)
	}
	for _, cl := range calls {
		if cl.done || !errors.Is(cl.err, ErrTimeout) || cl.took > time.Second ||
			!strings.Contains(cl.err.Error(), "own sink") {
			t.Errorf("from the sink: %+v: %v", cl, cl.err)
		}
	}
}

// A nil event is an error, not a panic that would leave the client unable to close.
func TestNilEvents(t *testing.T) {
	var col collector
	c, err := NewWithSink(Config{}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(nil); !errors.Is(err, ErrNullParameter) || !strings.Contains(err.Error(), "ev: is nil") {
		t.Errorf("Record(nil): %v", err)
	}
	if err := c.RecordCADF(nil); !errors.Is(err, ErrNullParameter) {
		t.Errorf("RecordCADF(nil): %v", err)
	}
	n, err := c.RecordBatch([]*Event{sampleEvent("a"), sampleEvent("b"), nil, sampleEvent("c")})
	if n != 2 || !errors.Is(err, ErrNullParameter) || !strings.Contains(err.Error(), "events[2]: is nil") {
		t.Errorf("RecordBatch with a nil: %d, %v", n, err)
	}
	r := mustClose(t, c)
	if r.Stats.Recorded != 2 || r.Stats.Delivered != 2 || r.Stats.Rejected.Total() != 0 {
		t.Fatalf("stats %+v", r.Stats)
	}
	select {
	case <-c.Released():
	case <-time.After(10 * time.Second):
		t.Fatal("not released")
	}
}

// Record calls made after Close released the handle are counted as Rejected.Closed.
func TestCallsAfterReleaseAreCounted(t *testing.T) {
	var col collector
	c, err := NewWithSink(Config{}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(sampleEvent("a")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, c)
	<-c.Released()
	for _, err := range []error{
		c.Record(sampleEvent("b")),
		c.RecordJSON([]byte(`{}`)),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("after release: %v", err)
		}
	}
	if _, err := c.RecordBatch([]*Event{sampleEvent("c")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("RecordBatch after release: %v", err)
	}
	if s := c.Stats(); s.Rejected.Closed != 3 || s.Recorded != 1 || !s.IsConsistent() {
		t.Fatalf("stats %+v", s)
	}
}
