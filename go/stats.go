package auditbuf

// Stats is a snapshot of the library's counters. Events are counted once each, in
// exactly one place, and in every snapshot
//
//	Recorded + Recovered == Delivered + DeadLettered + Failed + Dropped.Total() +
//	                        InFlight + Queued + Stored
//
// (see IsConsistent). Calls turned away (bad input, a full queue, a closed client) never
// entered the pipeline and are counted in Rejected, by reason.
type Stats struct {
	// Recorded counts events accepted by Record, RecordJSON and the batch calls.
	Recorded uint64
	// Recovered counts events a durable backing store already held when the client
	// opened it (an earlier run's).
	Recovered uint64
	// Delivered counts events the sink acknowledged.
	Delivered uint64
	// DeadLettered counts events the sink refused for good (after bisection).
	DeadLettered uint64
	// Failed counts events whose batch ran out of retries with no backing store.
	Failed uint64
	// Dropped counts events lost, by reason.
	Dropped Dropped
	// InFlight counts events held by the flush thread: batched, being sent, or waiting
	// for a retry.
	InFlight uint64
	// Queued counts events accepted and not yet taken by the flush thread.
	Queued uint64
	// Stored counts events in the backing store.
	Stored uint64
	// Sends counts batches handed to the sink, retries and split halves included.
	Sends uint64
	// Retries counts sends answered with a retryable failure.
	Retries uint64
	// Rejected counts calls turned away, by reason.
	Rejected Rejected
	// Redelivered counts events sent again because the store failed to record their
	// delivery (the receiver saw them twice; they count once in Delivered). Not part of
	// the invariant.
	Redelivered uint64
	// EndpointRefusals counts times the receiver refused every event it was shown alone
	// with the same answer, and the events were kept instead of dead-lettered.
	EndpointRefusals uint64
	// BatchesFailed counts batches whose retry budget ran out (their events went to
	// the backing store, or failed).
	BatchesFailed uint64
	// GapMarkers counts, of Recorded, the gap markers the client added
	// (Config.GapMarkers).
	GapMarkers uint64
	// DeadLetteredTooLarge counts, of DeadLettered, events refused with 413 even alone.
	DeadLetteredTooLarge uint64
	// DeadLetteredByStore counts, of DeadLettered, events the store dead-lettered on
	// its own (Postgres rows whose claimers kept dying).
	DeadLetteredByStore uint64
}

// Dropped counts events lost after they were accepted, by reason.
type Dropped struct {
	// Shutdown: still buffered when Close's deadline passed, with no backing store.
	Shutdown uint64
	// StoreFull: should have gone to the backing store, but it was full.
	StoreFull uint64
	// Damaged: lost to damage the backing store found reading them back.
	Damaged uint64
	// Oldest: queued events evicted to make room for newer ones (overflow
	// "drop_oldest").
	Oldest uint64
}

// Total is the sum of the reasons.
func (d Dropped) Total() uint64 { return d.Shutdown + d.StoreFull + d.Damaged + d.Oldest }

// Rejected counts calls turned away, by the error they returned.
type Rejected struct {
	QueueFull    uint64 // ErrFull
	BlockTimeout uint64 // ErrTimeout
	Closed       uint64 // ErrClosed or ErrForked (calls that reached the library)
	InvalidUTF8  uint64 // ErrInvalidUTF8
	InvalidJSON  uint64 // ErrInvalidJSON
	NotAnObject  uint64 // ErrNotAnObject
	TooLarge     uint64 // ErrTooLarge
	MissingField uint64 // ErrMissingField
	InvalidField uint64 // ErrInvalidField
	Serialize    uint64 // ErrSerialize
	StoreFull    uint64 // ErrStoreFull
	StoreError   uint64 // ErrStore (and store I/O or configuration errors while recording)
}

// Total is the sum of the reasons.
func (r Rejected) Total() uint64 {
	return r.QueueFull + r.BlockTimeout + r.Closed + r.InvalidUTF8 + r.InvalidJSON +
		r.NotAnObject + r.TooLarge + r.MissingField + r.InvalidField + r.Serialize +
		r.StoreFull + r.StoreError
}

// Settled is every event accounted for on the right-hand side of the invariant.
func (s Stats) Settled() uint64 {
	return s.Delivered + s.DeadLettered + s.Failed + s.Dropped.Total() + s.InFlight +
		s.Queued + s.Stored
}

// IsConsistent reports whether Recorded + Recovered equals Delivered + DeadLettered +
// Failed + Dropped + InFlight + Queued + Stored, as it does in every snapshot.
func (s Stats) IsConsistent() bool {
	return s.Recorded+s.Recovered == s.Settled()
}

// Report is what Flush or Close achieved by its deadline.
type Report struct {
	// Completed is true when the work finished before the deadline.
	Completed bool
	// Left counts events still queued or in flight when the call returned.
	Left uint64
	// Stats are the counters when the call returned.
	Stats Stats
}
