package auditbuf

import (
	"math"
	"sync"
)

// Event is a typed audit event with the DataStorage field names (the JSON keys on the
// wire are the snake_case forms: EventType is "event_type"). Record reads it during the
// call only; the library copies what it needs.
//
// Required: EventType, EventCategory, EventAction, EventOutcome, CorrelationID (empty is
// ErrMissingField). An empty optional string is an absent field. Version defaults to
// "1.0", EventTimestamp to the time of the call (RFC 3339, UTC, milliseconds).
// EventData is the JSON text of an object; its "event_type" is added when missing and
// must equal EventType otherwise (ErrInvalidField); nil sends {"event_type": EventType}.
type Event struct {
	Version         string // schema version; "" sends "1.0"
	EventType       string // e.g. "gateway.signal.received"; required
	EventTimestamp  string // RFC 3339; "" sends the time of the call
	EventCategory   string // e.g. "gateway"; required
	EventAction     string // e.g. "received"; required
	EventOutcome    string // "success", "failure" or "pending"; required
	CorrelationID   string // required
	ActorType       string
	ActorID         string
	ActorIP         string
	ResourceType    string
	ResourceID      string
	ParentEventID   string
	ParentEventDate string
	Namespace       string
	ClusterID       string
	Severity        string
	// DurationMs is at most math.MaxInt64 (DataStorage reads a signed 64-bit integer);
	// more is ErrInvalidField.
	DurationMs    Opt[uint64]
	ErrorCode     string
	ErrorMessage  string
	RetentionDays Opt[uint32]
	IsSensitive   Opt[bool]
	EventData     []byte // JSON object text; nil is absent
}

// Opt is an optional value: sent only when Set.
type Opt[T any] struct {
	Value T
	Set   bool
}

// Some is a set Opt.
func Some[T any](v T) Opt[T] { return Opt[T]{Value: v, Set: true} }

// The flat event of the C ABI (auditbuf_flat_event, version 1): integers only, so Go
// memory holding it can be passed to C. cgo.go checks the layout against the header.
const (
	flatVersion = 1
	flatStrings = 20
)

// Field indexes (AUDITBUF_FIELD_*).
const (
	fVersion = iota
	fEventType
	fEventTimestamp
	fEventCategory
	fEventAction
	fEventOutcome
	fCorrelationID
	fActorType
	fActorID
	fActorIP
	fResourceType
	fResourceID
	fParentEventID
	fParentEventDate
	fNamespace
	fClusterID
	fSeverity
	fErrorCode
	fErrorMessage
	fEventData
	fDurationMs
	fRetentionDays
	fIsSensitive
)

type flatSpan struct {
	offset uint32
	len    uint32
}

type flatEvent struct {
	version       uint32
	present       uint32
	durationMs    uint64
	retentionDays uint32
	isSensitive   uint32
	spans         [flatStrings]flatSpan
}

// encoder holds the buffers of one record call; pooled, so a call allocates nothing
// once the pool is warm.
type encoder struct {
	buf   []byte
	one   flatEvent
	flats []flatEvent
	spans []flatSpan
}

// retainBytes bounds the buffer an encoder keeps in the pool.
const retainBytes = 64 << 10

var encoders = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 1024)} }}

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.buf = e.buf[:0]
	return e
}

func putEncoder(e *encoder) {
	if cap(e.buf) > retainBytes || cap(e.flats) > 4096 || cap(e.spans) > 4096 {
		return
	}
	encoders.Put(e)
}

func (e *encoder) str(f *flatEvent, field int, s string) {
	if s == "" {
		return
	}
	f.spans[field] = flatSpan{offset: uint32(len(e.buf)), len: uint32(len(s))}
	f.present |= 1 << field
	e.buf = append(e.buf, s...)
}

// encode writes ev into f and e.buf. Offsets are 32-bit: the caller checks that the
// buffer stays under 4 GiB.
func (e *encoder) encode(f *flatEvent, ev *Event) {
	*f = flatEvent{version: flatVersion}
	e.str(f, fVersion, ev.Version)
	e.str(f, fEventType, ev.EventType)
	e.str(f, fEventTimestamp, ev.EventTimestamp)
	e.str(f, fEventCategory, ev.EventCategory)
	e.str(f, fEventAction, ev.EventAction)
	e.str(f, fEventOutcome, ev.EventOutcome)
	e.str(f, fCorrelationID, ev.CorrelationID)
	e.str(f, fActorType, ev.ActorType)
	e.str(f, fActorID, ev.ActorID)
	e.str(f, fActorIP, ev.ActorIP)
	e.str(f, fResourceType, ev.ResourceType)
	e.str(f, fResourceID, ev.ResourceID)
	e.str(f, fParentEventID, ev.ParentEventID)
	e.str(f, fParentEventDate, ev.ParentEventDate)
	e.str(f, fNamespace, ev.Namespace)
	e.str(f, fClusterID, ev.ClusterID)
	e.str(f, fSeverity, ev.Severity)
	e.str(f, fErrorCode, ev.ErrorCode)
	e.str(f, fErrorMessage, ev.ErrorMessage)
	if ev.EventData != nil {
		f.spans[fEventData] = flatSpan{offset: uint32(len(e.buf)), len: uint32(len(ev.EventData))}
		f.present |= 1 << fEventData
		e.buf = append(e.buf, ev.EventData...)
	}
	if ev.DurationMs.Set {
		f.present |= 1 << fDurationMs
		f.durationMs = ev.DurationMs.Value
	}
	if ev.RetentionDays.Set {
		f.present |= 1 << fRetentionDays
		f.retentionDays = ev.RetentionDays.Value
	}
	if ev.IsSensitive.Set {
		f.present |= 1 << fIsSensitive
		if ev.IsSensitive.Value {
			f.isSensitive = 1
		}
	}
}

// fits reports whether the buffer's offsets fit the flat form's 32 bits.
func (e *encoder) fits() bool { return uint64(len(e.buf)) <= math.MaxUint32 }

var errHuge = &Error{Code: 17, Message: "the events' bytes passed in one call exceed 4 GiB"}
