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

func ExampleClient_RecordCADF() {
	// For RabbitMQ, as audittools publishes to Hermes:
	//   auditbuf.New(auditbuf.Config{Sink: auditbuf.RabbitMQSink("amqp://user:password@rabbitmq:5672/%2f", "notifications.info")})
	// or auditbuf.ConfigFromEnv("AUDIT") with AUDIT_RABBITMQ_URL and AUDIT_RABBITMQ_QUEUE.
	var mu sync.Mutex
	var sent [][]byte
	client, err := auditbuf.NewWithSink(auditbuf.Config{Service: "nova"},
		func(events [][]byte) auditbuf.SinkOutcome {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, events...)
			return auditbuf.SinkDelivered
		})
	if err != nil {
		panic(err)
	}
	event := &auditbuf.CADFEvent{
		// Left out, ID is a new UUID v4 and EventTime the time of the call.
		ID:        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		EventTime: "2026-11-30T10:15:30.123456+00:00",
		Action:    "create",
		Outcome:   "success",
		Reason:    auditbuf.CADFReason{ReasonType: "HTTP", ReasonCode: "201"},
		Initiator: auditbuf.CADFResource{TypeURI: "service/security/account/user", Name: "ada", ID: "u-1"},
		Target:    auditbuf.CADFResource{TypeURI: "compute/server", ID: "s-1"},
		Observer:  auditbuf.CADFResource{TypeURI: "service/compute", ID: "nova-api-01"},
		Attachments: []auditbuf.CADFAttachment{{Name: "payload", TypeURI: "mime:application/json",
			Content: `{"flavor":"m1.small"}`, ContentIsJSON: true}},
		RequestPath: "/v2.1/servers",
	}
	fmt.Println("recorded:", client.RecordCADF(event))
	event.Outcome = "ok"
	err = client.RecordCADF(event)
	fmt.Println("refused:", errors.Is(err, auditbuf.ErrInvalidField), err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	report, err := client.Close(ctx)
	fmt.Println("close:", err, report.Stats.Delivered, report.Stats.Rejected.InvalidField)
	fmt.Printf("%s\n", sent[0])
	// Output:
	// recorded: <nil>
	// refused: true auditbuf: invalid field: field outcome: must be "success", "failure", "pending" or "unknown"
	// close: <nil> 1 1
	// {"typeURI":"http://schemas.dmtf.org/cloud/audit/1.0/event","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","eventTime":"2026-11-30T10:15:30.123456+00:00","eventType":"activity","action":"create","outcome":"success","reason":{"reasonType":"HTTP","reasonCode":"201"},"initiator":{"typeURI":"service/security/account/user","name":"ada","id":"u-1"},"target":{"typeURI":"compute/server","id":"s-1"},"observer":{"typeURI":"service/compute","id":"nova-api-01"},"attachments":[{"name":"payload","typeURI":"mime:application/json","content":{"flavor":"m1.small"}}],"requestPath":"/v2.1/servers"}
}
