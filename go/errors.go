package auditbuf

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, one per status code of the C ABI (docs/c.md: the status table).
// Every error the package returns for a status is an *Error that wraps one of these, so
// test with errors.Is:
//
//	if err := client.Record(ev); errors.Is(err, auditbuf.ErrFull) { … }
//
// ErrNotDurable is not a failure: the event was accepted (see Accepted).
var (
	// ErrNotDurable (status 1) is a warning: the event was accepted and will be sent,
	// but the "wal" store's sync failed, so it may not survive a crash.
	ErrNotDurable = errors.New("auditbuf: accepted, but not durable")
	// ErrFull (10): the queue is full (overflow "drop_newest", or a record made by the
	// client's own sink, which never waits); the event was not taken. One refusal in 32 on
	// an OS thread yields its CPU to the flush thread (see Client).
	ErrFull = errors.New("auditbuf: queue full")
	// ErrTimeout (11): no queue slot within BlockTimeout (overflow "block"), or Flush or
	// Close reached their deadline with work left, or were called by the client's own
	// sink (they then return at once, not completed).
	ErrTimeout = errors.New("auditbuf: timeout")
	// ErrClosed (12): the client was closed.
	ErrClosed = errors.New("auditbuf: closed")
	// ErrForked (13): the client was created before fork(); make a new one in the child.
	ErrForked = errors.New("auditbuf: created before fork")
	// ErrInvalidUTF8 (14): a JSON event is not valid UTF-8 (the message gives the offset).
	ErrInvalidUTF8 = errors.New("auditbuf: invalid UTF-8")
	// ErrInvalidJSON (15): a JSON event, or a typed event's EventData, is not valid JSON
	// (for EventData and CADF attachment content the message names the field, and its
	// byte offset counts from the start of that field).
	ErrInvalidJSON = errors.New("auditbuf: invalid JSON")
	// ErrNotAnObject (16): a JSON event is valid JSON but not an object.
	ErrNotAnObject = errors.New("auditbuf: not a JSON object")
	// ErrTooLarge (17): the encoded event is larger than MaxEventBytes.
	ErrTooLarge = errors.New("auditbuf: event too large")
	// ErrMissingField (18): a required field of a typed event is empty.
	ErrMissingField = errors.New("auditbuf: missing field")
	// ErrInvalidField (19): a typed field is not UTF-8, or EventData's event_type differs
	// from the event's.
	ErrInvalidField = errors.New("auditbuf: invalid field")
	// ErrSerialize (20): a value could not be serialised (not returned through the C ABI;
	// listed for completeness).
	ErrSerialize = errors.New("auditbuf: serialize")
	// ErrStoreFull (21): the backing store is at its configured limit.
	ErrStoreFull = errors.New("auditbuf: backing store full")
	// ErrStore (22): the backing store failed (locked by another process, disk error).
	ErrStore = errors.New("auditbuf: backing store")
	// ErrConfig (30): the configuration is invalid; the message names the field.
	ErrConfig = errors.New("auditbuf: invalid configuration")
	// ErrIO (31): a file the configuration names (token, CA) could not be read.
	ErrIO = errors.New("auditbuf: i/o")
	// ErrSpawn (32): the flush thread could not be started.
	ErrSpawn = errors.New("auditbuf: cannot start the flush thread")
	// ErrNullParameter (100): a nil event (Record(nil), a nil element of RecordBatch,
	// RecordCADF(nil)), or the C ABI got a NULL pointer (a bug in this package).
	ErrNullParameter = errors.New("auditbuf: NULL parameter")
	// ErrInvalidParameter (101): the C ABI got an argument out of range (a bug in this
	// package, or an event buffer over 4 GiB).
	ErrInvalidParameter = errors.New("auditbuf: invalid parameter")
	// ErrPanic (102): the library panicked (a bug); the call did nothing further.
	ErrPanic = errors.New("auditbuf: library panic")
	// ErrUnknown: a status this package does not know (a newer library).
	ErrUnknown = errors.New("auditbuf: unknown status")
)

var sentinels = map[uint32]error{
	1: ErrNotDurable, 10: ErrFull, 11: ErrTimeout, 12: ErrClosed, 13: ErrForked,
	14: ErrInvalidUTF8, 15: ErrInvalidJSON, 16: ErrNotAnObject, 17: ErrTooLarge,
	18: ErrMissingField, 19: ErrInvalidField, 20: ErrSerialize, 21: ErrStoreFull,
	22: ErrStore, 30: ErrConfig, 31: ErrIO, 32: ErrSpawn, 100: ErrNullParameter,
	101: ErrInvalidParameter, 102: ErrPanic,
}

// Error is what the library said: its status code (the C ABI's auditbuf_status, the
// same numbers in every binding) and its message, which names the field, limit or file.
// It unwraps to the sentinel for its code.
type Error struct {
	// Code is the status, e.g. 10 for ErrFull.
	Code uint32
	// Message is the library's own message, e.g.
	// "event of 70000 bytes is over the max_event_bytes limit of 65536", or
	// "invalid configuration: queue_capacity: is 0, must be at least 1" (Error says
	// "invalid configuration" once: "auditbuf: invalid configuration: queue_capacity: …").
	Message string
}

// Error returns the sentinel's text and the library's message, saying once what both
// say: "auditbuf: invalid configuration: max_event_bytes: …", where the library's
// message is "invalid configuration: max_event_bytes: …".
func (e *Error) Error() string {
	sentinel := e.Unwrap().Error()
	if e.Message == "" {
		return sentinel
	}
	said := strings.TrimPrefix(sentinel, "auditbuf: ") + ": "
	return sentinel + ": " + strings.TrimPrefix(e.Message, said)
}

// Unwrap returns the sentinel for the code (ErrUnknown for a code this package does not
// know).
func (e *Error) Unwrap() error {
	if s, ok := sentinels[e.Code]; ok {
		return s
	}
	return ErrUnknown
}

// Name is the C name of the status, e.g. "AUDITBUF_FULL".
func (e *Error) Name() string {
	return statusName(e.Code)
}

// Accepted reports whether a record call took the event: err is nil, or only the
// ErrNotDurable warning.
func Accepted(err error) bool {
	return err == nil || errors.Is(err, ErrNotDurable)
}

func errorOf(status uint32, msg string) error {
	if status == 0 {
		return nil
	}
	return &Error{Code: status, Message: msg}
}

// errFreed is returned, without allocating, by calls made after Close released the
// handle (record calls count themselves in Stats().Rejected.Closed: the library's
// counters stopped then).
var errFreed = &Error{Code: 12, Message: "the client is closed"}

// errNilEvent is returned, without allocating, for a nil event.
var errNilEvent = &Error{Code: 100, Message: "ev: is nil"}

func configError(format string, args ...any) error {
	return &Error{Code: 30, Message: fmt.Sprintf(format, args...)}
}
