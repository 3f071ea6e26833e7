package kubernaut

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
)

// AuditStore is kubernaut's interface: non-blocking audit storage.
type AuditStore interface {
	// StoreAudit adds an event to the buffer (non-blocking).
	StoreAudit(ctx context.Context, event *AuditEvent) error
	// Close flushes remaining events and stops the background worker.
	Close() error
}

// DataStorageClient says where a BufferedStore sends. kubernaut's is an interface with
// StoreBatch, called by its goroutine; here the library sends, so this only names the
// target: the DataStorage service (*OpenAPIClientAdapter, from NewOpenAPIClientAdapter
// or DataStorageURL) or, for tests and transports of your own, a BatchFunc.
type DataStorageClient interface {
	configure(cfg *auditbuf.Config) func([][]byte) auditbuf.SinkOutcome
}

// OpenAPIClientAdapter names the DataStorage service: the events go to
// POST {URL}/api/v1/audit/events/batch as JSON arrays of at most 500. The name and
// constructor are kubernaut's, so its setup code compiles unchanged.
type OpenAPIClientAdapter struct {
	// URL is the service's base URL, e.g. "http://datastorage-service:8080".
	URL string
	// Timeout bounds each request (kubernaut's adapter timeout). Default 30 s.
	Timeout time.Duration
	// TokenFile holds a bearer token (the ServiceAccount token), re-read when it changes
	// and after a 401.
	TokenFile string
	// BearerToken is a fixed token, if TokenFile is empty.
	BearerToken string
	// CAFile is an extra PEM CA to trust.
	CAFile string
	// Headers are extra request headers.
	Headers map[string]string
}

// NewOpenAPIClientAdapter names the DataStorage service at baseURL, each request bounded
// by timeout. It has the signature of kubernaut's constructor; it makes no connection.
func NewOpenAPIClientAdapter(baseURL string, timeout time.Duration) (*OpenAPIClientAdapter, error) {
	if baseURL == "" {
		return nil, fmt.Errorf("baseURL cannot be empty")
	}
	if timeout < 0 {
		return nil, fmt.Errorf("timeout must not be negative, got %v", timeout)
	}
	return &OpenAPIClientAdapter{URL: baseURL, Timeout: timeout}, nil
}

// DataStorageURL names the DataStorage service at baseURL with default settings.
func DataStorageURL(baseURL string) *OpenAPIClientAdapter {
	return &OpenAPIClientAdapter{URL: baseURL}
}

func (a *OpenAPIClientAdapter) configure(cfg *auditbuf.Config) func([][]byte) auditbuf.SinkOutcome {
	cfg.Sink = auditbuf.Sink{
		Type:        auditbuf.SinkDataStorage,
		URL:         a.URL,
		Timeout:     a.Timeout,
		TokenFile:   a.TokenFile,
		BearerToken: a.BearerToken,
		CAFile:      a.CAFile,
		Headers:     a.Headers,
	}
	return nil
}

// BatchFunc receives each batch (each event one JSON object, as the DataStorage service
// would get it) on the library's flush thread: nil delivers the batch, an error has it
// retried with backoff. For tests, and for transports of your own.
type BatchFunc func(ctx context.Context, events [][]byte) error

func (f BatchFunc) configure(*auditbuf.Config) func([][]byte) auditbuf.SinkOutcome {
	return func(events [][]byte) auditbuf.SinkOutcome {
		if f(context.Background(), events) != nil {
			return auditbuf.SinkRetry
		}
		return auditbuf.SinkDelivered
	}
}

// Logger is what NewBufferedStore logs through: kubernaut's logr.Logger and
// *slog.Logger both satisfy it. Errors go to Error(err, msg, kv…) (logr) or
// Error(msg, kv…) (slog) when the logger has one, else to Info. nil logs to
// slog.Default().
type Logger interface {
	Info(msg string, keysAndValues ...any)
}

// BufferedStore is an AuditStore backed by an auditbuf client: StoreAudit encodes the
// event into the library's queue on the caller's goroutine (no per-event JSON marshalling,
// validation against an OpenAPI document, or allocation beyond what building the event
// took), and the library batches, sends, retries, splits on 413, bisects 400s, treats
// 202 as delivered, and counts every event (Stats).
type BufferedStore struct {
	client       *auditbuf.Client
	service      string
	logger       Logger
	closeTimeout time.Duration
	closeOnce    sync.Once
	closeErr     error
}

// NewBufferedStore starts a store that sends to client; config, serviceName and logger
// as kubernaut's. An invalid config is logged and replaced by DefaultConfig(), as
// kubernaut does.
func NewBufferedStore(client DataStorageClient, config Config, serviceName string, logger Logger) (*BufferedStore, error) {
	if client == nil {
		return nil, fmt.Errorf("client cannot be nil")
	}
	if l, ok := logger.(*slog.Logger); logger == nil || (ok && l == nil) {
		logger = slog.Default()
	}
	if err := config.Validate(); err != nil {
		logError(logger, err, "Invalid audit config, using defaults")
		store, closeTimeout := config.Store, config.CloseTimeout
		config = DefaultConfig()
		config.Store = store
		if closeTimeout > 0 {
			config.CloseTimeout = closeTimeout
		}
	}
	cfg := config.pipeline(serviceName)
	var c *auditbuf.Client
	var err error
	if sink := client.configure(&cfg); sink != nil {
		c, err = auditbuf.NewWithSink(cfg, sink)
	} else {
		c, err = auditbuf.New(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to create audit store: %w", err)
	}
	closeTimeout := config.CloseTimeout
	if closeTimeout <= 0 {
		closeTimeout = 30 * time.Second
	}
	logger.Info("Audit store initialized",
		"service", serviceName,
		"buffer_size", config.BufferSize,
		"batch_size", config.BatchSize,
		"flush_interval", config.FlushInterval,
		"max_retries", config.MaxRetries,
	)
	return &BufferedStore{client: c, service: serviceName, logger: logger, closeTimeout: closeTimeout}, nil
}

func logError(logger Logger, err error, msg string, kv ...any) {
	switch l := logger.(type) {
	case interface {
		Error(err error, msg string, keysAndValues ...any)
	}:
		l.Error(err, msg, kv...)
	case interface {
		Error(msg string, args ...any)
	}:
		l.Error(msg, append(kv, "error", err)...)
	default:
		logger.Info(msg, append(kv, "error", err)...)
	}
}

// rfc3339ms is the timestamp layout DataStorage gets: UTC, milliseconds.
const rfc3339ms = "2006-01-02T15:04:05.000Z07:00"

// StoreAudit validates the event (kubernaut's required fields) and queues it; it never
// blocks and never does I/O. It returns an error when the event was not taken: invalid
// (wrapping auditbuf.ErrMissingField or ErrInvalidField, or the library's reason), the
// buffer full (auditbuf.ErrFull), or the store closed (auditbuf.ErrClosed; kubernaut
// drops such events silently). Every refusal is counted in Stats().Rejected.
func (s *BufferedStore) StoreAudit(ctx context.Context, event *AuditEvent) error {
	if event == nil {
		return fmt.Errorf("invalid audit event: %w: event is nil", auditbuf.ErrMissingField)
	}
	if err := event.Validate(); err != nil {
		kind := auditbuf.ErrInvalidField
		if strings.HasSuffix(err.Error(), " is required") {
			kind = auditbuf.ErrMissingField
		}
		return fmt.Errorf("invalid audit event: %w: %v", kind, err)
	}
	var ts, parent [32]byte
	ev := auditbuf.Event{
		Version:       event.EventVersion,
		EventType:     event.EventType,
		EventCategory: event.EventCategory,
		EventAction:   event.EventAction,
		EventOutcome:  event.EventOutcome,
		CorrelationID: event.CorrelationID,
		ActorType:     event.ActorType,
		ActorID:       event.ActorID,
		ActorIP:       deref(event.ActorIP),
		ResourceType:  event.ResourceType,
		ResourceID:    event.ResourceID,
		ParentEventID: deref(event.ParentEventID),
		Namespace:     deref(event.Namespace),
		ClusterID:     deref(event.ClusterID),
		Severity:      deref(event.Severity),
		ErrorCode:     deref(event.ErrorCode),
		ErrorMessage:  deref(event.ErrorMessage),
		EventData:     event.EventData,
		IsSensitive:   auditbuf.Some(event.IsSensitive),
	}
	if !event.EventTimestamp.IsZero() {
		ev.EventTimestamp = string(event.EventTimestamp.UTC().AppendFormat(ts[:0], rfc3339ms))
	}
	if event.ParentEventDate != nil {
		ev.ParentEventDate = string(event.ParentEventDate.UTC().AppendFormat(parent[:0], rfc3339ms))
	}
	if event.DurationMs != nil {
		ev.DurationMs = auditbuf.Some(uint64(*event.DurationMs))
	}
	if event.RetentionDays > 0 {
		ev.RetentionDays = auditbuf.Some(uint32(min(int64(event.RetentionDays), math.MaxUint32)))
	}
	err := s.client.Record(&ev)
	if err == nil {
		return nil
	}
	if errors.Is(err, auditbuf.ErrNotDurable) {
		logError(s.logger, err, "Audit event accepted, but its write-ahead sync failed",
			"event_type", event.EventType, "correlation_id", event.CorrelationID)
		return nil
	}
	if errors.Is(err, auditbuf.ErrFull) {
		return fmt.Errorf("audit buffer full: event dropped (correlation_id=%s): %w", event.CorrelationID, err)
	}
	return fmt.Errorf("audit event not buffered (correlation_id=%s): %w", event.CorrelationID, err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Flush waits until every event stored before it is delivered (or dead-lettered,
// stored, failed), or ctx ends.
func (s *BufferedStore) Flush(ctx context.Context) error {
	_, err := s.client.Flush(ctx)
	if err != nil {
		return fmt.Errorf("flush failed: %w", err)
	}
	return nil
}

// Close sends what is buffered within Config.CloseTimeout and stops the store. As
// kubernaut's, it returns an error when events were lost (dropped at the deadline or
// failed after retries) or the deadline passed; calling it again returns nil.
func (s *BufferedStore) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		ctx, cancel := context.WithTimeout(context.Background(), s.closeTimeout)
		defer cancel()
		report, err := s.client.Close(ctx)
		st := report.Stats
		s.logger.Info("Audit store closed",
			"service", s.service,
			"buffered_count", st.Recorded,
			"written_count", st.Delivered,
			"dropped_count", st.Dropped.Total()+st.Rejected.QueueFull,
			"failed_count", st.Failed,
			"dead_lettered_count", st.DeadLettered,
			"stored_count", st.Stored,
		)
		switch {
		case err != nil:
			s.closeErr = fmt.Errorf("timeout waiting for audit store to close: %w", err)
		case st.Dropped.Total() > 0:
			s.closeErr = fmt.Errorf("audit store closed with %d dropped events", st.Dropped.Total())
		case st.Failed > 0:
			s.closeErr = fmt.Errorf("audit store closed with %d failed events", st.Failed)
		}
	})
	if !first {
		return nil
	}
	return s.closeErr
}

// Stats returns the library's counters (see auditbuf.Stats).
func (s *BufferedStore) Stats() auditbuf.Stats { return s.client.Stats() }

// Client returns the auditbuf client underneath, e.g. for the prometheus collector.
func (s *BufferedStore) Client() *auditbuf.Client { return s.client }
