// Package auditbuf ships audit events to a collector without blocking the program and
// without losing what it promised to keep. It is the Go face of the auditbuf library
// (Rust, linked statically through its C ABI): a record call encodes the event on the
// caller's goroutine into a pooled buffer and queues it — no allocation, no lock, no
// I/O — and the library's flush thread batches, sends, retries, splits and bisects, keeps
// events in a backing store during outages, and counts every event in Stats.
//
// Build the library once, from the repository root (needs Rust):
//
//	make -C go lib        # cargo build --release -p auditbuf-ffi
//
// then use the package:
//
//	client, err := auditbuf.New(auditbuf.Config{
//		Service: "gateway",
//		Sink:    auditbuf.DataStorageSink("http://datastorage:8080"),
//	})
//	if err != nil { … }
//	err = client.Record(&auditbuf.Event{
//		EventType: "gateway.signal.received", EventCategory: "gateway",
//		EventAction: "received", EventOutcome: "success", CorrelationID: "rr-1",
//		EventData: []byte(`{"signal_name":"HighMemoryUsage"}`),
//	})
//	switch {
//	case auditbuf.Accepted(err): // taken (ErrNotDurable is only a warning)
//	case errors.Is(err, auditbuf.ErrFull): // the queue is full: counted, not taken
//	}
//	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	report, err := client.Close(ctx) // sends what it can by the deadline
//
// # Errors
//
// Every error from the library wraps one sentinel per status code (ErrFull, ErrTimeout,
// ErrClosed, ErrForked, ErrInvalidUTF8, ErrInvalidJSON, ErrNotAnObject, ErrTooLarge,
// ErrMissingField, ErrInvalidField, ErrStoreFull, ErrStore, ErrConfig, ErrIO, …) and
// carries the library's message naming the field, limit or file; *Error gives the code.
// ErrNotDurable is a warning: the event was accepted.
//
// # Contexts
//
// Flush and Close take a context: its deadline becomes the library's timeout
// (DefaultTimeout when it has none), and cancelling it makes the call return at once with
// ErrTimeout (the library's work goes on to its deadline in the background).
//
// # Memory
//
// Go memory is passed to C for the duration of a call only, and holds no Go pointers:
// typed events go through the ABI's flat form (one byte buffer and a table of offsets),
// CADF events through a flat form of this package's (a byte buffer and tables of
// integers, from which a C wrapper builds the ABI's struct of views), so the package
// passes GODEBUG=cgocheck=1 and GOEXPERIMENT=cgocheck2. RecordJSON, Record and RecordCADF
// allocate nothing once warm; a callback sink gets each batch copied into Go memory.
//
// # Subpackages
//
// kubernaut is a drop-in for kubernaut's pkg/audit (AuditStore, NewBufferedStore,
// AuditEvent, NewEventData); prometheus exports Stats under pkg/audit's metric names and
// is the only package that imports client_golang.
package auditbuf
