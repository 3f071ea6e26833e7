// Records two audit events through a callback sink that prints them, then closes.
// Build and run: see the "Go" section of the README (or `make -C go example`).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
)

func main() {
	// The sink: called on the library's flush thread with each batch, a copy the callback
	// may keep. Use auditbuf.New with Sink: auditbuf.DataStorageSink(url) (or HTTPSink)
	// to send events to a collector instead.
	client, err := auditbuf.NewWithSink(auditbuf.Config{Service: "gateway", QueueCapacity: 10000},
		func(events [][]byte) auditbuf.SinkOutcome {
			for _, e := range events {
				fmt.Printf("sent: %s\n", e)
			}
			return auditbuf.SinkDelivered
		})
	if err != nil {
		log.Fatal(err)
	}

	// A typed event: absent fields left empty. Record copies it; nothing is kept.
	err = client.Record(&auditbuf.Event{
		EventType:      "gateway.signal.received",
		EventCategory:  "gateway",
		EventAction:    "received",
		EventOutcome:   "success",
		CorrelationID:  "rr-2026-001",
		ActorType:      "service",
		ActorID:        "gateway",
		EventData:      []byte(`{"signal_type":"alert","signal_name":"HighMemoryUsage"}`),
		EventTimestamp: "2026-11-30T10:00:00.000Z",
	})
	if err != nil {
		log.Fatal(err)
	}

	// Raw JSON: one object. Bad input is refused with its own error, and counted.
	if err := client.RecordJSON([]byte(`{"event_type":"user.login","user":"ada"}`)); err != nil {
		log.Fatal(err)
	}
	err = client.RecordJSON([]byte(`[1, 2]`))
	fmt.Printf("refused: %v (ErrNotAnObject: %t)\n", err, errors.Is(err, auditbuf.ErrNotAnObject))

	// Shut down: send what is left within 5 s and say what happened.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	report, err := client.Close(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("delivered %d, rejected %d, left %d\n",
		report.Stats.Delivered, report.Stats.Rejected.NotAnObject, report.Left)
	if report.Stats.Delivered != 2 {
		os.Exit(1)
	}
}
