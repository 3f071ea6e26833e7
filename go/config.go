package auditbuf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"
	"unicode/utf8"
)

// Config is the whole pipeline: its settings, its sink and its backing store. New
// marshals it to the C ABI's configuration document (README "Configuration"); json.Marshal
// gives the same document. Zero fields keep the library's defaults; where the library
// also takes 0 (DeadLetterCapacity, InitialSlotBytes, RetainedSlotBytes, DropTimeout), a
// negative value stands for it.
type Config struct {
	// Service names the recording service, for logs and metrics. Defaults to "auditbuf".
	Service string
	// QueueCapacity is the number of events buffered before Overflow applies.
	// Defaults to 10 000.
	QueueCapacity int
	// MaxLanes is how many lanes the queue may split into: 1 (the default), 2, 4 or 8.
	// With one, each goroutine's events arrive in the order it recorded them. With more,
	// each OS thread records into a lane of its own, which spares goroutines running at
	// once on different CPUs the cache lines they would all write (the parallel
	// benchmarks were 16–22 % cheaper with 8), but events keep their order only per OS
	// thread, and a goroutine may make each call on another thread. Any other value (3,
	// -1) makes New return an error wrapping ErrConfig that names max_lanes.
	MaxLanes int
	// MaxEventBytes is the largest encoded event; larger ones get ErrTooLarge.
	// Defaults to 64 KiB.
	MaxEventBytes int
	// BatchMaxEvents caps a batch (the DataStorage sink caps it at 500 too).
	// Defaults to 500.
	BatchMaxEvents int
	// BatchMaxBytes caps a batch's bytes (each event plus one). Defaults to 4 MiB.
	BatchMaxBytes int
	// FlushInterval is the longest wait for a batch to fill (whole milliseconds,
	// rounded up). Defaults to 1 s.
	FlushInterval time.Duration
	// Overflow is what a record call does when the queue is full. Defaults to
	// OverflowDropNewest.
	Overflow Overflow
	// BlockTimeout is how long a record call waits for a slot under OverflowBlock
	// (required, and only allowed, with it; 0 is "do not wait").
	BlockTimeout time.Duration
	// Durability says when a record call returns. Defaults to DurabilityBuffered.
	Durability Durability
	// Retry bounds the retries of a batch. Defaults to 60 s of retries.
	Retry Retry
	// DeadLetterCapacity is the number of dead letters kept for inspection (at most
	// 100 000). Defaults to 1000; a negative value keeps none (the library's 0).
	DeadLetterCapacity int
	// InitialSlotBytes is the capacity a queue slot starts with (at most 1 MiB).
	// Defaults to 512; a negative value starts slots empty (the library's 0).
	InitialSlotBytes int
	// RetainedSlotBytes is the largest capacity a slot keeps between events (at most
	// 64 MiB; below InitialSlotBytes it acts as InitialSlotBytes). Defaults to 8 KiB; a
	// negative value is the library's 0.
	RetainedSlotBytes int
	// DropTimeout is the deadline of the close that releasing an unclosed client
	// performs (the finalizer's). Defaults to 1 s; a negative one closes without
	// waiting (the library's 0).
	DropTimeout time.Duration
	// GapMarkers, when true, has the client record one marker event (event_type
	// "auditbuf.events.lost", counted in Stats.GapMarkers) after events were lost, at
	// most one a second. Defaults to off.
	GapMarkers bool
	// Categories are the only event_category values a typed event may have; others get
	// ErrInvalidField. 1 to 256 names of 1 to 50 characters. Defaults to nil: any
	// category of 1 to 50 characters; an empty non-nil list is refused with ErrConfig.
	Categories []string
	// CheckTimestampWindow rejects a typed event whose timestamp lies outside the window
	// DataStorage accepts, [now - 7 days, now + 60 min], with ErrInvalidField. Defaults
	// to off: the server judges by its own clock, at delivery.
	CheckTimestampWindow bool
	// Sink is where batches go. Required by New; must be zero for NewWithSink.
	Sink Sink
	// Store is the backing store that keeps events through outages, overflow and, with
	// DurabilityWAL, crashes. Defaults to none.
	Store *Store
}

// Overflow is what a record call does when the queue is full.
type Overflow string

// The overflow policies.
const (
	// OverflowDropNewest returns ErrFull without waiting for a slot and counts it (a
	// thread refused again and again yields its CPU once every 32 refusals while the flush
	// thread runs, so that it can make room).
	OverflowDropNewest Overflow = "drop_newest"
	// OverflowDropOldest evicts the oldest queued event (Stats.Dropped.Oldest) to take
	// the new one: the newest events survive an overload.
	OverflowDropOldest Overflow = "drop_oldest"
	// OverflowBlock waits up to Config.BlockTimeout for a slot, then returns ErrTimeout
	// (ErrClosed at once if Close is called meanwhile).
	OverflowBlock Overflow = "block"
	// OverflowSpill appends the event to the backing store (needs Config.Store).
	OverflowSpill Overflow = "spill"
)

// Durability says when a record call returns.
type Durability string

// The durability modes.
const (
	// DurabilityBuffered returns once the event is queued.
	DurabilityBuffered Durability = "buffered"
	// DurabilityWAL returns once the event is in the (durable) backing store.
	DurabilityWAL Durability = "wal"
)

// Retry bounds the retries of a batch. Zero fields keep the defaults.
type Retry struct {
	// MaxAttempts bounds the sends of a batch. Defaults to unbounded (time decides).
	MaxAttempts int
	// MaxElapsed is how long a batch is retried. Defaults to 60 s.
	MaxElapsed time.Duration
	// BackoffBase is the first backoff. Defaults to 200 ms; at least 1 ms, at most BackoffCap.
	BackoffBase time.Duration
	// BackoffCap is the largest backoff. Defaults to 10 s.
	BackoffCap time.Duration
}

// SinkType names a built-in sink.
type SinkType string

// The built-in sinks.
const (
	// SinkDataStorage posts JSON arrays to {URL}/api/v1/audit/events/batch (kubernaut's
	// DataStorage service): at most 500 events and under 5 MiB a request.
	SinkDataStorage SinkType = "datastorage"
	// SinkHTTP posts batches to URL, as a JSON array or NDJSON (Format).
	SinkHTTP SinkType = "http"
	// SinkRabbitMQ publishes each event as one persistent message to a RabbitMQ queue
	// (AMQP 0-9-1, URL amqp:// or amqps://) and counts it delivered only once the broker
	// confirmed it (README "RabbitMQ and CADF"). Meant for CADF events (RecordCADF), whose
	// id becomes the message id.
	SinkRabbitMQ SinkType = "rabbitmq"
	// SinkNull accepts everything (benchmarks).
	SinkNull SinkType = "null"
)

// Sink configures a built-in sink. Zero fields keep the defaults. Each type takes only
// its own fields (the library refuses the others, naming them): the HTTP ones Format
// (SinkHTTP only), Headers, BearerToken and TokenFile; SinkRabbitMQ Queue, Exchange,
// RoutingKey and NoDeclare; all of them URL, ConnectTimeout, Timeout and CAFile.
type Sink struct {
	// Type is the sink; required.
	Type SinkType
	// URL is the DataStorage base URL, the HTTP endpoint, or the RabbitMQ broker's
	// amqp:// or amqps:// URL (amqp://user:password@host:5672/%2f; messages and logs
	// never show the password); required for those.
	URL string
	// Format is "json_array" (default) or "ndjson"; SinkHTTP only.
	Format string
	// Headers are extra request headers.
	Headers map[string]string
	// BearerToken is sent as "Authorization: Bearer …".
	BearerToken string
	// TokenFile holds the bearer token; it is re-read when it changes and after a 401.
	TokenFile string
	// Queue is the queue SinkRabbitMQ publishes to (wire name "queue"); required unless
	// Exchange and RoutingKey are set.
	Queue string
	// Exchange is the exchange SinkRabbitMQ publishes to ("exchange"); it must exist (it
	// is checked, never declared). Defaults to "", the default exchange, which routes by
	// queue name.
	Exchange string
	// RoutingKey is the routing key of every message ("routing_key"); SinkRabbitMQ only.
	// Defaults to the queue's name.
	RoutingKey string
	// NoDeclare makes SinkRabbitMQ only check that the queue exists, as it is, instead
	// of declaring it durable on connecting (the document's "declare": false): for a
	// queue its owner declared with other settings, such as a length limit.
	NoDeclare bool
	// ConnectTimeout bounds connecting (for SinkRabbitMQ also opening a channel and
	// declaring or checking the queue). Defaults to 5 s.
	ConnectTimeout time.Duration
	// Timeout is the whole request's (for SinkRabbitMQ: publishing one batch and having
	// every message confirmed). Defaults to 30 s.
	Timeout time.Duration
	// CAFile is a PEM file of CA certificates: for the HTTP sinks trusted on top of the
	// bundled roots, for SinkRabbitMQ (amqps://) instead of them.
	CAFile string
}

// DataStorageSink is the sink for kubernaut's DataStorage service at baseURL.
func DataStorageSink(baseURL string) Sink { return Sink{Type: SinkDataStorage, URL: baseURL} }

// HTTPSink posts JSON arrays of events to url.
func HTTPSink(url string) Sink { return Sink{Type: SinkHTTP, URL: url} }

// RabbitMQSink publishes to queue through the default exchange of the broker at url
// (amqp://user:password@host:5672/%2f, or amqps://), declaring the queue durable.
func RabbitMQSink(url, queue string) Sink { return Sink{Type: SinkRabbitMQ, URL: url, Queue: queue} }

// NullSink accepts every batch and does nothing.
func NullSink() Sink { return Sink{Type: SinkNull} }

// Store configures the backing store: Type "memory", "file" or "sqlite" (the C library
// Go links is built without the Rust crate's "postgres" feature) and
// its Params (README "Backing stores and durability"), the same document as
// ${PREFIX}_BACKING_STORE.
type Store struct {
	Type   string
	Params map[string]any
}

// FileStore is a write-ahead log in dir, synced per fsync ("always", "interval" or
// "never"; "" keeps the default).
func FileStore(dir, fsync string) *Store {
	params := map[string]any{"path": dir}
	if fsync != "" {
		params["fsync"] = fsync
	}
	return &Store{Type: "file", Params: params}
}

// MemoryStore keeps events in memory through outages and overflow.
func MemoryStore() *Store { return &Store{Type: "memory", Params: map[string]any{}} }

// settingsDoc is the pipeline-settings part of the document: exactly what
// ${PREFIX}_CONFIG may hold (core/src/config.rs ConfigDoc).
type settingsDoc struct {
	Service            string     `json:"service,omitempty"`
	QueueCapacity      int        `json:"queue_capacity,omitempty"`
	MaxLanes           int        `json:"max_lanes,omitempty"`
	MaxEventBytes      int        `json:"max_event_bytes,omitempty"`
	BatchMaxEvents     int        `json:"batch_max_events,omitempty"`
	BatchMaxBytes      int        `json:"batch_max_bytes,omitempty"`
	FlushIntervalMs    uint64     `json:"flush_interval_ms,omitempty"`
	Overflow           Overflow   `json:"overflow,omitempty"`
	BlockTimeoutMs     *uint64    `json:"block_timeout_ms,omitempty"`
	Durability         Durability `json:"durability,omitempty"`
	Retry              *retryDoc  `json:"retry,omitempty"`
	DeadLetterCapacity *int       `json:"dead_letter_capacity,omitempty"`
	InitialSlotBytes   *int       `json:"initial_slot_bytes,omitempty"`
	RetainedSlotBytes  *int       `json:"retained_slot_bytes,omitempty"`
	DropTimeoutMs      *uint64    `json:"drop_timeout_ms,omitempty"`
	GapMarkers         bool       `json:"gap_markers,omitempty"`
	Categories         *[]string  `json:"categories,omitempty"`
	CheckTimestamps    bool       `json:"check_timestamp_window,omitempty"`
}

type retryDoc struct {
	MaxAttempts   int    `json:"max_attempts,omitempty"`
	MaxElapsedMs  uint64 `json:"max_elapsed_ms,omitempty"`
	BackoffBaseMs uint64 `json:"backoff_base_ms,omitempty"`
	BackoffCapMs  uint64 `json:"backoff_cap_ms,omitempty"`
}

type sinkDoc struct {
	Type             SinkType          `json:"type"`
	URL              *string           `json:"url,omitempty"`
	Format           string            `json:"format,omitempty"`
	Headers          map[string]string `json:"headers,omitempty"`
	BearerToken      string            `json:"bearer_token,omitempty"`
	TokenFile        string            `json:"token_file,omitempty"`
	Queue            string            `json:"queue,omitempty"`
	Exchange         string            `json:"exchange,omitempty"`
	RoutingKey       string            `json:"routing_key,omitempty"`
	Declare          *bool             `json:"declare,omitempty"`
	ConnectTimeoutMs uint64            `json:"connect_timeout_ms,omitempty"`
	TimeoutMs        uint64            `json:"timeout_ms,omitempty"`
	CAFile           string            `json:"ca_file,omitempty"`
}

type storeDoc struct {
	Type   string         `json:"type"`
	Params map[string]any `json:"params"`
}

type document struct {
	settingsDoc
	Sink  *sinkDoc  `json:"sink,omitempty"`
	Store *storeDoc `json:"store,omitempty"`
}

// orZero is the document's value of a setting whose Go zero keeps the default and whose
// negative values stand for the library's 0.
func orZero(v int) *int {
	switch {
	case v < 0:
		return new(int)
	case v > 0:
		return &v
	}
	return nil
}

// fromZero is orZero's inverse: an explicit 0 in a document becomes -1.
func fromZero(p *int) int {
	switch {
	case p == nil:
		return 0
	case *p == 0:
		return -1
	}
	return *p
}

// ms converts a duration to whole milliseconds, rounding up, so that a positive
// duration never becomes 0.
func ms(field string, d time.Duration) (uint64, error) {
	if d < 0 {
		return 0, configError("%s: is negative (%v)", field, d)
	}
	return ceilMs(d), nil
}

// ceilMs is d in whole milliseconds, rounded up (d >= 0), without the overflow of
// d + time.Millisecond - 1 near math.MaxInt64.
func ceilMs(d time.Duration) uint64 {
	n := uint64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		n++
	}
	return n
}

func (c Config) document() (document, error) {
	var doc document
	var err error
	msField := func(field string, d time.Duration) uint64 {
		v, e := ms(field, d)
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	doc.settingsDoc = settingsDoc{
		Service:            c.Service,
		QueueCapacity:      c.QueueCapacity,
		MaxLanes:           c.MaxLanes,
		MaxEventBytes:      c.MaxEventBytes,
		BatchMaxEvents:     c.BatchMaxEvents,
		BatchMaxBytes:      c.BatchMaxBytes,
		FlushIntervalMs:    msField("flush_interval_ms", c.FlushInterval),
		Overflow:           c.Overflow,
		Durability:         c.Durability,
		DeadLetterCapacity: orZero(c.DeadLetterCapacity),
		InitialSlotBytes:   orZero(c.InitialSlotBytes),
		RetainedSlotBytes:  orZero(c.RetainedSlotBytes),
		GapMarkers:         c.GapMarkers,
		CheckTimestamps:    c.CheckTimestampWindow,
	}
	// Sent when set, even empty: an allowlist built at run time that comes out empty is
	// refused (ErrConfig), not taken to mean any category.
	if c.Categories != nil {
		doc.Categories = &c.Categories
	}
	switch {
	case c.DropTimeout < 0:
		doc.DropTimeoutMs = new(uint64)
	case c.DropTimeout > 0:
		v := msField("drop_timeout_ms", c.DropTimeout)
		doc.DropTimeoutMs = &v
	}
	if c.Overflow == OverflowBlock || c.BlockTimeout != 0 {
		v := msField("block_timeout_ms", c.BlockTimeout)
		doc.BlockTimeoutMs = &v
	}
	if c.Retry != (Retry{}) {
		doc.Retry = &retryDoc{
			MaxAttempts:   c.Retry.MaxAttempts,
			MaxElapsedMs:  msField("retry.max_elapsed_ms", c.Retry.MaxElapsed),
			BackoffBaseMs: msField("retry.backoff_base_ms", c.Retry.BackoffBase),
			BackoffCapMs:  msField("retry.backoff_cap_ms", c.Retry.BackoffCap),
		}
	}
	if !c.Sink.isZero() {
		s := c.Sink
		doc.Sink = &sinkDoc{
			Type: s.Type, Format: s.Format, Headers: s.Headers,
			BearerToken: s.BearerToken, TokenFile: s.TokenFile, CAFile: s.CAFile,
			Queue: s.Queue, Exchange: s.Exchange, RoutingKey: s.RoutingKey,
			ConnectTimeoutMs: msField("sink.connect_timeout_ms", s.ConnectTimeout),
			TimeoutMs:        msField("sink.timeout_ms", s.Timeout),
		}
		// Every sink but the null one takes a URL: an empty one is sent as written, so that
		// the library says it is empty ("sink.url: \"\" is not a URL: empty string"), not
		// missing.
		if s.URL != "" || s.Type != SinkNull {
			url := s.URL
			doc.Sink.URL = &url
		}
		if s.NoDeclare {
			declare := false
			doc.Sink.Declare = &declare
		}
	}
	if c.Store != nil {
		params := c.Store.Params
		if params == nil {
			params = map[string]any{}
		}
		doc.Store = &storeDoc{Type: c.Store.Type, Params: params}
	}
	return doc, err
}

// MarshalJSON returns the configuration document New hands to the library.
func (c Config) MarshalJSON() ([]byte, error) {
	doc, err := c.document()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// ConfigFromEnv reads the configuration from the environment the way the Rust
// PipelineConfig::from_env does: ${prefix}_CONFIG holds pipeline settings (a document
// without "sink" or "store", e.g. {"durability":"wal","queue_capacity":20000}) and
// ${prefix}_BACKING_STORE the store ({"type":"file","params":{"path":"/var/lib/audit"}}).
// Unset variables keep the defaults. The library checks both values with Rust's own rules
// (auditbuf_config_check_env): a value that is not one JSON object, or has an unknown,
// duplicated, null, ill-typed or out-of-range field, is an error wrapping ErrConfig whose
// message is Rust's, naming the variable and the field, e.g.
// "auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacity: is 0, must be at least 1"
// or "auditbuf: invalid configuration: AUDIT_BACKING_STORE: params: missing field `path`".
// Nothing is opened yet: New opens the store, and checks what needs the whole
// configuration (DurabilityWAL without a durable store).
//
// The only sink read from the environment is RabbitMQ's: ${prefix}_RABBITMQ_URL and
// ${prefix}_RABBITMQ_QUEUE, or, as sapcc audittools names them,
// ${prefix}_RABBITMQ_HOSTNAME ("localhost"), _PORT (5672), _USERNAME and _PASSWORD
// ("guest") and _QUEUE_NAME. When any of them is set, Config.Sink is that SinkRabbitMQ
// (pass the config to New); a queue missing or given twice, a URL given both whole and in
// parts, a port that is not a number and a URL that is not amqp:// or amqps:// are errors
// naming the variable, which never show the password. Without them Config.Sink is zero:
// set it, or use NewWithSink.
func ConfigFromEnv(prefix string) (Config, error) {
	if !utf8.ValidString(prefix) {
		return Config{}, configError("%q: the prefix is not valid UTF-8", prefix)
	}
	lookup := func(name string) *string {
		if v, ok := os.LookupEnv(name); ok {
			return &v
		}
		return nil
	}
	configText, storeText := lookup(prefix+"_CONFIG"), lookup(prefix+"_BACKING_STORE")
	// The library's check is Rust's from_env: its rules, its messages. The Go decoding
	// below only fills Config from what passed it.
	if status, msg := checkEnvConfig(prefix, configText, storeText); status != 0 {
		return Config{}, errorOf(status, msg)
	}
	var c Config
	if configText != nil {
		var doc settingsDoc
		if err := decodeStrict(*configText, &doc); err != nil {
			return Config{}, configError("%s_CONFIG: %v", prefix, err)
		}
		c = doc.config()
	}
	if storeText != nil {
		var doc storeDoc
		if err := decodeStrict(*storeText, &doc); err != nil {
			return Config{}, configError("%s_BACKING_STORE: %v", prefix, err)
		}
		c.Store = &Store{Type: doc.Type, Params: doc.Params}
	}
	sink, err := rabbitMQFromEnv(prefix, os.LookupEnv)
	if err != nil {
		return Config{}, err
	}
	if sink != nil {
		c.Sink = *sink
	}
	return c, nil
}

// decodeStrict decodes exactly one JSON value, refusing unknown fields and trailing text,
// keeping numbers exact.
func decodeStrict(text string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing text after the document")
	}
	return nil
}

func (d settingsDoc) config() Config {
	dur := func(v uint64) time.Duration {
		if v > uint64(math.MaxInt64/int64(time.Millisecond)) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(v) * time.Millisecond
	}
	c := Config{
		Service:              d.Service,
		QueueCapacity:        d.QueueCapacity,
		MaxLanes:             d.MaxLanes,
		MaxEventBytes:        d.MaxEventBytes,
		BatchMaxEvents:       d.BatchMaxEvents,
		BatchMaxBytes:        d.BatchMaxBytes,
		FlushInterval:        dur(d.FlushIntervalMs),
		Overflow:             d.Overflow,
		Durability:           d.Durability,
		DeadLetterCapacity:   fromZero(d.DeadLetterCapacity),
		InitialSlotBytes:     fromZero(d.InitialSlotBytes),
		RetainedSlotBytes:    fromZero(d.RetainedSlotBytes),
		GapMarkers:           d.GapMarkers,
		CheckTimestampWindow: d.CheckTimestamps,
	}
	if d.Categories != nil {
		c.Categories = *d.Categories
	}
	if d.DropTimeoutMs != nil {
		c.DropTimeout = dur(*d.DropTimeoutMs)
		if c.DropTimeout == 0 {
			c.DropTimeout = -1
		}
	}
	if d.BlockTimeoutMs != nil {
		c.BlockTimeout = dur(*d.BlockTimeoutMs)
	}
	if d.Retry != nil {
		c.Retry = Retry{
			MaxAttempts: d.Retry.MaxAttempts,
			MaxElapsed:  dur(d.Retry.MaxElapsedMs),
			BackoffBase: dur(d.Retry.BackoffBaseMs),
			BackoffCap:  dur(d.Retry.BackoffCapMs),
		}
	}
	return c
}
