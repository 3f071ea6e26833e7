package auditbuf

import (
	"fmt"
	"log/slog"
	"runtime/cgo"
)

// SinkOutcome is a callback sink's answer for one batch (AUDITBUF_SINK_*).
type SinkOutcome uint32

// The outcomes.
const (
	// SinkDelivered: every event of the batch is delivered.
	SinkDelivered SinkOutcome = 0
	// SinkRetry: a passing failure; the same batch is sent again after a backoff.
	SinkRetry SinkOutcome = 1
	// SinkRejected: the batch's content was refused; the library bisects it, delivers the
	// rest and dead-letters the events refused alone.
	SinkRejected SinkOutcome = 2
	// SinkTooLarge: the batch is too large; it is sent again in halves, and a single
	// event still too large is dead-lettered.
	SinkTooLarge SinkOutcome = 3
)

func (o SinkOutcome) String() string {
	switch o {
	case SinkDelivered:
		return "delivered"
	case SinkRetry:
		return "retry"
	case SinkRejected:
		return "rejected"
	case SinkTooLarge:
		return "too large"
	}
	return fmt.Sprintf("SinkOutcome(%d)", uint32(o))
}

type sinkFunc func(events [][]byte) SinkOutcome

// deliver hands a batch (already copied into Go memory) to the callback behind handle.
// A panic must not unwind into C: it is recovered and the batch retried.
func deliver(handle uintptr, batch [][]byte) (outcome uint32) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("auditbuf: the sink callback panicked; the batch will be retried",
				"panic", r, "events", len(batch))
			outcome = uint32(SinkRetry)
		}
	}()
	fn := cgo.Handle(handle).Value().(sinkFunc)
	return uint32(fn(batch))
}
