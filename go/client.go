package auditbuf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is the deadline Flush and Close use when their context has none.
const DefaultTimeout = 30 * time.Second

// Client records audit events into an auditbuf pipeline: a bounded queue, one flush
// thread (in the library, not a goroutine) and a sink. All methods are safe for
// concurrent use, Close included. Record calls never wait for a slot (unless
// Config.Overflow is OverflowBlock) and never do I/O on the caller's goroutine; a thread
// turned away with ErrFull again and again yields its CPU (sched_yield) once every 32
// refusals while the flush thread works, so that it can make room — counted per OS
// thread, not per goroutine.
type Client struct {
	n native
	// state counts the calls using the handle; freeing is set once Close is about to
	// release it, after which calls return ErrClosed without touching it.
	state atomic.Int64

	sink         cgo.Handle // the callback sink's handle, 0 for a built-in sink
	cleanup      runtime.Cleanup
	once         sync.Once
	closed       chan struct{} // closed when the library's close returned
	released     chan struct{} // closed when the handle is freed
	report       Report        // the first close's, valid once closed is closed
	err          error
	final        atomic.Pointer[Stats]  // the counters at release, for Stats() after it
	freedCalls   atomic.Uint64          // record calls refused with ErrClosed after release
	finalMetrics atomic.Pointer[string] // the metrics text at release, for MetricsText() after it
	finalError   atomic.Pointer[string] // the last error at release, for LastError() after it
}

const freeing = int64(1) << 62

// New starts a pipeline whose sink is cfg.Sink (DataStorage, HTTP or null).
func New(cfg Config) (*Client, error) {
	if cfg.Sink.Type == "" {
		return nil, configError("sink: missing field (set Config.Sink, or use NewWithSink)")
	}
	return start(cfg, nil)
}

// NewWithSink starts a pipeline whose sink is fn, called on the library's flush thread
// with each batch, one batch at a time. Each event is one JSON object; the batch is a
// copy in Go memory that fn may keep. fn's answer decides what happens to the batch (see
// SinkOutcome); a panic in fn is recovered, logged and treated as SinkRetry. fn may call
// back into its own client (itself, not from goroutines it starts, which are other
// callers), where nothing waits for the flush thread that runs fn: a
// record call is turned away with ErrFull rather than wait for a slot (even under
// OverflowBlock); Flush and Close return at once with an error wrapping ErrTimeout (not
// completed; the Close takes effect when fn returns, and a later Close reports it).
// cfg.Sink must be zero.
func NewWithSink(cfg Config, fn func(events [][]byte) SinkOutcome) (*Client, error) {
	if fn == nil {
		return nil, configError("sink: the callback is nil")
	}
	if !cfg.Sink.isZero() {
		return nil, configError("sink: set by Config.Sink; NewWithSink takes its sink as a callback")
	}
	return start(cfg, fn)
}

func start(cfg Config, fn func([][]byte) SinkOutcome) (*Client, error) {
	doc, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{closed: make(chan struct{}), released: make(chan struct{})}
	if fn != nil {
		c.sink = cgo.NewHandle(sinkFunc(fn))
	}
	n, status, msg := newNative(doc, uintptr(c.sink))
	if status != 0 {
		if c.sink != 0 {
			c.sink.Delete()
		}
		return nil, errorOf(status, msg)
	}
	c.n = n
	c.cleanup = runtime.AddCleanup(c, leaked, leak{n: n, sink: c.sink})
	return c, nil
}

// leak is what the safety-net cleanup needs to release a client nobody closed.
type leak struct {
	n    native
	sink cgo.Handle
}

func leaked(l leak) {
	slog.Warn("auditbuf: a Client was garbage-collected without Close; closing it now " +
		"(up to its drop_timeout_ms). Call Close to choose the deadline and see the report.")
	go func() {
		l.n.free()
		if l.sink != 0 {
			l.sink.Delete()
		}
	}()
}

// enter registers a call using the handle; false once the handle is (being) released.
func (c *Client) enter() bool {
	if c == nil {
		return false
	}
	if c.state.Add(1)&freeing != 0 {
		c.state.Add(-1)
		return false
	}
	return true
}

func (c *Client) leave() { c.state.Add(-1) }

// refused is what a record call made after the handle was released returns: ErrClosed,
// counted in Stats().Rejected.Closed as the library counts those made before.
func (c *Client) refused() error {
	if c != nil {
		c.freedCalls.Add(1)
	}
	return errFreed
}

// Record records a typed event. It returns nil when the event was accepted, the
// ErrNotDurable warning when it was accepted but its "wal" sync failed (see Accepted),
// and otherwise an error wrapping the reason (ErrFull, ErrTimeout, ErrClosed,
// ErrMissingField, ErrInvalidField, ErrInvalidJSON, ErrTooLarge, ErrStoreFull, ErrStore,
// ErrForked). ev is read during the call only. Allocation-free once warm.
func (c *Client) Record(ev *Event) error {
	if ev == nil {
		return errNilEvent
	}
	if !c.enter() {
		return c.refused()
	}
	e := getEncoder()
	e.encode(&e.one, ev)
	var status uint32
	var msg string
	if e.fits() {
		status, msg = c.n.recordFlat(&e.one, e.buf)
	}
	c.leave()
	ok := e.fits()
	putEncoder(e)
	if !ok {
		return errHuge
	}
	return errorOf(status, msg)
}

// RecordJSON records one event given as JSON text: exactly one object, UTF-8, at most
// MaxEventBytes once completed. "version":"1.0" and "event_timestamp" are added when
// absent. Errors as for Record, plus ErrInvalidUTF8, ErrInvalidJSON and ErrNotAnObject.
// event is read during the call only. Allocation-free.
func (c *Client) RecordJSON(event []byte) error {
	if !c.enter() {
		return c.refused()
	}
	status, msg := c.n.recordJSON(event)
	c.leave()
	return errorOf(status, msg)
}

// RecordBatch records events in order in one call into the library, stopping at the
// first one not accepted: it returns how many were accepted (events[:n]) and, when
// n < len(events), the error of events[n] (its message starts "events[n]: "). When all
// were taken the error is nil, or ErrNotDurable if any was only that.
func (c *Client) RecordBatch(events []*Event) (int, error) {
	for i, ev := range events {
		if ev == nil {
			// Those before it are recorded, as for any event not accepted.
			n, err := c.RecordBatch(events[:i])
			if n < i || (err != nil && !errors.Is(err, ErrNotDurable)) {
				return n, err
			}
			return n, &Error{Code: 100, Message: fmt.Sprintf("events[%d]: is nil", i)}
		}
	}
	if len(events) == 0 {
		return 0, nil
	}
	if !c.enter() {
		return 0, c.refused()
	}
	e := getEncoder()
	e.flats = e.flats[:0]
	for _, ev := range events {
		e.flats = append(e.flats, flatEvent{})
		e.encode(&e.flats[len(e.flats)-1], ev)
	}
	ok := e.fits()
	var taken int
	var status uint32
	var msg string
	if ok {
		taken, status, msg = c.n.recordFlatBatch(e.flats, e.buf)
	}
	c.leave()
	putEncoder(e)
	if !ok {
		return 0, errHuge
	}
	return taken, errorOf(status, msg)
}

// RecordJSONBatch records JSON events in order in one call into the library, like
// RecordBatch.
func (c *Client) RecordJSONBatch(events [][]byte) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	if !c.enter() {
		return 0, c.refused()
	}
	e := getEncoder()
	e.spans = e.spans[:0]
	for _, ev := range events {
		e.spans = append(e.spans, flatSpan{offset: uint32(len(e.buf)), len: uint32(len(ev))})
		e.buf = append(e.buf, ev...)
		if !e.fits() || uint64(len(ev)) > math.MaxUint32 {
			c.leave()
			putEncoder(e)
			return 0, errHuge
		}
	}
	taken, status, msg := c.n.recordJSONBatch(e.buf, e.spans)
	c.leave()
	putEncoder(e)
	return taken, errorOf(status, msg)
}

// Stats returns a consistent snapshot of the counters. After Close it returns the
// counters as they were when the handle was released. Allocation-free.
func (c *Client) Stats() Stats {
	if !c.enter() {
		if c != nil {
			if s := c.final.Load(); s != nil {
				final := *s
				final.Rejected.Closed += c.freedCalls.Load()
				return final
			}
		}
		return Stats{}
	}
	s := c.n.stats()
	c.leave()
	return s
}

// MetricsText returns the client's metrics in the Prometheus text format (version
// 0.0.4), exactly as the Rust library and the C ABI expose them: kubernaut's
// audit_events_buffered_total, audit_events_dropped_total{reason},
// audit_events_written_total, audit_batches_failed_total, audit_buffer_size and
// audit_write_duration_seconds, plus audit_events_dead_lettered_total{reason},
// audit_retries_total, audit_buffer_capacity and the backing store's gauges, each with
// the label service (Config.Service). Serve it from a /metrics handler of your own, or
// use the prometheus package for client_golang. After Close it returns the text as it
// was when the handle was released, with the calls refused since counted in
// audit_events_dropped_total{reason="closed"}. Never blocks on the flush thread.
func (c *Client) MetricsText() string {
	if !c.enter() {
		if c != nil {
			if t, s := c.finalMetrics.Load(), c.final.Load(); t != nil && s != nil {
				return withClosedCount(*t, s.Rejected.Closed+c.freedCalls.Load())
			}
		}
		return ""
	}
	t := c.n.metricsText()
	c.leave()
	return t
}

// LastError is the pipeline's last send, store or rejection error, "" while there was
// none: why events are being retried, stored or failed during an outage (for example
// `POST http://collector:8080/api/v1/audit/events: io: Connection refused (os error 111)`
// or a receiver's 503 and its detail). The Rust library also logs these; a Go program does
// not see its log, so log this yourself when Stats shows retries or failures. Never
// shows a token or a URL's password. After Close, the error as it was at release. Never
// blocks on the flush thread.
func (c *Client) LastError() string {
	if !c.enter() {
		if c != nil {
			if e := c.finalError.Load(); e != nil {
				return *e
			}
		}
		return ""
	}
	e := c.n.lastError()
	c.leave()
	return e
}

// withClosedCount returns text with its audit_events_dropped_total{reason="closed"}
// sample set to n: calls refused after release are counted by the client, not the
// released library, whose text at release does not have them.
func withClosedCount(text string, n uint64) string {
	const family, label = "audit_events_dropped_total{", `,reason="closed"} `
	for start := 0; start < len(text); {
		end := strings.IndexByte(text[start:], '\n')
		if end < 0 {
			end = len(text) - start
		}
		line := text[start : start+end]
		if strings.HasPrefix(line, family) {
			if i := strings.Index(line, label); i >= 0 {
				at := start + i + len(label)
				return text[:at] + strconv.FormatUint(n, 10) + text[start+end:]
			}
		}
		start += end + 1
	}
	return text
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return libraryVersion() }

// timeoutMs turns ctx's deadline into the ABI's timeout (DefaultTimeout without one).
func timeoutMs(ctx context.Context) uint64 {
	d := DefaultTimeout
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline)
	}
	if d <= 0 {
		return 0
	}
	return ceilMs(d)
}

// Flush waits until everything recorded before the call is settled (delivered,
// dead-lettered, stored or failed), or until ctx's deadline (DefaultTimeout without one)
// or cancellation: then it returns an error wrapping ErrTimeout, and nothing is lost —
// the rest is still queued, in flight or stored. After Close it returns ErrClosed.
func (c *Client) Flush(ctx context.Context) (Report, error) {
	if !c.enter() {
		return Report{Completed: true, Stats: c.Stats()}, errFreed
	}
	timeout := timeoutMs(ctx)
	// Inside its own sink the library returns at once (not completed): on this thread.
	if ctx.Done() == nil || inSink(uintptr(c.sink)) {
		r, status, msg := c.n.flush(timeout)
		c.leave()
		return r, errorOf(status, msg)
	}
	type result struct {
		r   Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, status, msg := c.n.flush(timeout)
		c.leave()
		done <- result{r, errorOf(status, msg)}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The library has the same deadline and returns by it: take its report.
			res := <-done
			return res.r, res.err
		}
		return Report{Stats: c.Stats()}, fmt.Errorf("%w: flush: %w", ErrTimeout, ctx.Err())
	}
}

// Close stops the client: later record calls return ErrClosed. It sends what it can by
// ctx's deadline (DefaultTimeout without one), keeps the rest in the backing store (or,
// without one, counts it in Stats.Dropped.Shutdown), and returns by the deadline even if
// the sink hangs: with an error wrapping ErrTimeout if the library had not finished. The
// handle is then released (auditbuf_pipeline_free) — in the background if a call is
// still running — after which the sink callback is never called again.
//
// Close is idempotent: every call returns the report and error of the one close the
// library did (waiting for it within its own ctx). If ctx is cancelled before its
// deadline, Close returns ErrTimeout at once and the close goes on in the background, to
// that deadline.
func (c *Client) Close(ctx context.Context) (Report, error) {
	if c == nil || c.closed == nil {
		return Report{}, errFreed
	}
	first := false
	c.once.Do(func() {
		first = true
		timeout := timeoutMs(ctx)
		c.cleanup.Stop()
		go c.shutdown(timeout)
	})
	if inSink(uintptr(c.sink)) {
		// The sink closing its own client: the library's close, begun above (or before),
		// waits for the flush thread, which runs this sink; it ends once the sink returns.
		// A later Close (or the first, elsewhere) waits for it and reports it.
		return Report{Stats: c.Stats()}, &Error{Code: 11, Message: "close: called by the " +
			"client's own sink, on the flush thread the close waits for: returned at once, " +
			"not completed (the close takes effect when the sink returns)"}
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
		if !first || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Report{Stats: c.Stats()}, fmt.Errorf("%w: close: %w", ErrTimeout, ctx.Err())
		}
		// The library's close was given this deadline and returns by it: take its report.
		<-c.closed
	}
	if c.report.Completed {
		// The flush thread has stopped, so releasing the handle is quick: wait for it,
		// so that Close returns with nothing of the client left running.
		select {
		case <-c.released:
		case <-ctx.Done():
		}
	}
	return c.report, c.err
}

// shutdown closes the pipeline, then releases the handle once no call uses it.
func (c *Client) shutdown(timeout uint64) {
	r, status, msg := c.n.close(timeout)
	c.report, c.err = r, errorOf(status, msg)
	close(c.closed)
	// Calls that entered before this see a closed pipeline and return at once (those
	// waiting for a slot under OverflowBlock are woken with ErrClosed), except flushes
	// (up to their deadline): wait for them before freeing.
	c.state.Add(freeing)
	for wait := time.Microsecond; c.state.Load() != freeing; {
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
	final := c.n.stats()
	c.final.Store(&final)
	finalMetrics := c.n.metricsText()
	c.finalMetrics.Store(&finalMetrics)
	finalError := c.n.lastError()
	c.finalError.Store(&finalError)
	c.n.free()
	if c.sink != 0 {
		c.sink.Delete()
	}
	close(c.released)
}

// Released returns a channel closed once Close has released the library's handle (and,
// for NewWithSink, once the callback can no longer be called).
func (c *Client) Released() <-chan struct{} {
	if c == nil || c.released == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return c.released
}
