package auditbuf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Flush, Close and the end of a client's life: Close keeps its deadline with a hanging
// receiver, Flush honours cancellation, every call after Close is ErrClosed and never a
// crash, and a client never closed is closed by its cleanup.

func TestCloseWithAHangingReceiverKeepsItsDeadline(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(Config{FlushInterval: 10 * time.Millisecond,
		Sink: Sink{Type: SinkDataStorage, URL: srv.URL, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := c.Record(sampleEvent(fmt.Sprint("rr-", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-entered
	const deadline = 300 * time.Millisecond
	start := time.Now()
	report, err := c.Close(ctxFor(t, deadline))
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || report.Completed {
		t.Fatalf("Close = %+v, %v", report, err)
	}
	if took > deadline+700*time.Millisecond {
		t.Fatalf("Close took %v with a deadline of %v", took, deadline)
	}
	if !report.Stats.IsConsistent() || report.Stats.InFlight == 0 {
		t.Fatalf("report %+v", report)
	}
	if err := c.RecordJSON([]byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
	// The handle is released in the background, without waiting for the receiver.
	select {
	case <-c.Released():
	case <-time.After(5 * time.Second):
		t.Fatal("the handle was not released")
	}
	t.Logf("Close returned after %v (deadline %v)", took, deadline)
}

func TestUseAfterCloseIsErrClosedNeverACrash(t *testing.T) {
	c, err := New(Config{Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	// Producers keep recording while Close runs and after it released the handle.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := sampleEvent("rr")
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, err := range []error{c.Record(ev), c.RecordJSON([]byte(`{}`))} {
					// Four producers against one flush thread (slowed by -race) may fill
					// the queue: ErrFull is drop_newest doing its job, not a failure.
					if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFull) {
						t.Errorf("record: %v", err)
					}
				}
				_, _ = c.RecordBatch([]*Event{ev})
				_ = c.Stats()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	first, err := c.Close(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	<-c.Released()
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
	again, err := c.Close(context.Background())
	if err != nil || again != first {
		t.Fatalf("second Close = %+v, %v; first %+v", again, err, first)
	}
	for _, err := range []error{
		c.Record(sampleEvent("x")),
		c.RecordJSON([]byte(`{}`)),
		func() error { _, err := c.RecordBatch([]*Event{sampleEvent("x")}); return err }(),
		func() error { _, err := c.RecordJSONBatch([][]byte{[]byte(`{}`)}); return err }(),
		func() error { _, err := c.Flush(context.Background()); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
	s := c.Stats()
	if !s.IsConsistent() || s.Recorded == 0 || s.Delivered != s.Recorded {
		t.Fatalf("stats after close %+v", s)
	}
	// The calls refused after release are in both views of the counters.
	if s.Rejected.Closed < 4 {
		t.Fatalf("calls after release not counted: %+v", s.Rejected)
	}
	closed := fmt.Sprintf(`audit_events_dropped_total{service="auditbuf",reason="closed"} %d`+"\n", s.Rejected.Closed)
	if m := c.MetricsText(); !strings.Contains(m, closed) {
		t.Fatalf("MetricsText after release lacks %q:\n%s", closed, m)
	}
	var nilClient *Client
	if err := nilClient.RecordJSON([]byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("nil client: %v", err)
	}
}

func TestFlushHonoursCancellation(t *testing.T) {
	g := newGate()
	c, err := NewWithSink(Config{}, g.hold)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordJSON([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-g.entered; cancel() }()
	_, err = c.Flush(ctx)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush = %v", err)
	}
	close(g.open)
	if r, err := c.Flush(ctxFor(t, 5*time.Second)); err != nil || !r.Completed {
		t.Fatalf("Flush = %+v, %v", r, err)
	}
	mustClose(t, c)
}

// A client dropped without Close is closed by the safety net (after logging the leak):
// what it had recorded is still delivered.
func TestUnclosedClientIsClosedByTheCleanup(t *testing.T) {
	delivered := make(chan struct{})
	var once sync.Once
	func() {
		c, err := NewWithSink(Config{FlushInterval: time.Hour}, func([][]byte) SinkOutcome {
			once.Do(func() { close(delivered) })
			return SinkDelivered
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RecordJSON([]byte(`{"event_type":"leaked"}`)); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-delivered:
			return
		case <-deadline:
			t.Fatal("the unclosed client was never closed")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
