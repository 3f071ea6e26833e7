package auditbuf_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
)

func ExampleNewWithSink() {
	var mu sync.Mutex
	var sent [][]byte
	client, err := auditbuf.NewWithSink(auditbuf.Config{Service: "gateway"},
		func(events [][]byte) auditbuf.SinkOutcome {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, events...) // a copy: ours to keep
			return auditbuf.SinkDelivered
		})
	if err != nil {
		panic(err)
	}
	err = client.Record(&auditbuf.Event{
		EventType: "gateway.signal.received", EventCategory: "gateway",
		EventAction: "received", EventOutcome: "success", CorrelationID: "rr-1",
		EventTimestamp: "2026-11-30T10:00:00.000Z", DurationMs: auditbuf.Some[uint64](42),
	})
	fmt.Println("typed:", err)
	err = client.RecordJSON([]byte(`{"user":`))
	fmt.Println("invalid JSON:", errors.Is(err, auditbuf.ErrInvalidJSON))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	report, err := client.Close(ctx)
	fmt.Println("close:", err, report.Stats.Delivered, report.Stats.Rejected.InvalidJSON)
	fmt.Printf("%s\n", sent[0])
	fmt.Println("after close:", errors.Is(client.RecordJSON([]byte(`{}`)), auditbuf.ErrClosed))
	// Output:
	// typed: <nil>
	// invalid JSON: true
	// close: <nil> 1 1
	// {"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2026-11-30T10:00:00.000Z","event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-1","duration_ms":42,"event_data":{"event_type":"gateway.signal.received"}}
	// after close: true
}
