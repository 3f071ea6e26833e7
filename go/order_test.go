package auditbuf

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// A goroutine may make each call on another OS thread, and each OS thread records into its
// own lane. Here one caller's events are recorded by four goroutines in turn, each locked
// to its own OS thread, each call after the previous one returned, while the flush thread
// is held in the sink and the events wait in the queue: with the default MaxLanes (one
// lane) they arrive in the order they were recorded.
func TestACallersEventsStayInOrderAcrossOSThreads(t *testing.T) {
	const total = 400
	g := newGate()
	var col collector
	c, err := NewWithSink(Config{QueueCapacity: 1_000}, func(batch [][]byte) SinkOutcome {
		g.hold(batch)
		return col.sink(batch)
	})
	if err != nil {
		t.Fatal(err)
	}
	next := make([]chan int, 4)
	for i := range next {
		next[i] = make(chan int, 1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range next {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				select {
				case k := <-next[i]:
					if err := c.RecordJSON([]byte(fmt.Sprintf(`{"event_type":"t","n":%d}`, k))); err != nil {
						t.Errorf("event %d: %v", k, err)
					}
					if k+1 == total {
						close(done)
						return
					}
					next[(i+1)%len(next)] <- k + 1
				case <-done:
					return
				}
			}
		}()
	}
	next[0] <- 0
	wg.Wait()
	close(g.open)
	report := mustClose(t, c)
	if report.Stats.Delivered != total {
		t.Fatalf("delivered %d of %d: %+v", report.Stats.Delivered, total, report.Stats)
	}
	for want, e := range col.got() {
		var ev struct{ N int }
		if err := json.Unmarshal(e, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.N != want {
			t.Fatalf("event %d arrived in place %d", ev.N, want)
		}
	}
}
