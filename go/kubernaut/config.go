package kubernaut

import (
	"fmt"
	"time"

	auditbuf "github.com/auditbuf/auditbuf/go"
)

// Config has kubernaut's pkg/audit fields, and two of auditbuf's.
type Config struct {
	// BufferSize is the number of events buffered (the queue's capacity); a full buffer
	// refuses new events with an error wrapping auditbuf.ErrFull. Default 10 000.
	BufferSize int
	// BatchSize is the most events per request; the DataStorage sink never sends more
	// than the server's 500 whatever this says. Default 1000 (as kubernaut's).
	BatchSize int
	// FlushInterval is the longest a partial batch waits. Default 1 s.
	FlushInterval time.Duration
	// MaxRetries is the number of retries of a failed batch (MaxRetries+1 sends), within
	// the library's 60 s retry budget, with exponential backoff and jitter. Default 3.
	MaxRetries int

	// CloseTimeout is Close's deadline (kubernaut waits at most 30 s). Default 30 s.
	CloseTimeout time.Duration
	// Store, when set, keeps events through DataStorage outages, and batches that ran
	// out of retries, instead of dropping them (e.g. auditbuf.FileStore(dir, "always"));
	// kubernaut has none.
	Store *auditbuf.Store
}

// DefaultConfig returns kubernaut's defaults: BufferSize 10000, BatchSize 1000,
// FlushInterval 1 s, MaxRetries 3.
func DefaultConfig() Config {
	return Config{
		BufferSize:    10000,
		BatchSize:     1000,
		FlushInterval: time.Second,
		MaxRetries:    3,
		CloseTimeout:  30 * time.Second,
	}
}

// RecommendedConfig returns kubernaut's per-service buffer sizes (DD-AUDIT-004):
// 50 000 for datastorage and workflowexecution, 30 000 for gateway,
// signalprocessing and remediation-orchestrator, 20 000 for aianalysis,
// notification and effectivenessmonitor, 20 000 with batches of 50 every 500 ms for
// kubernaut-agent, and 30 000 for any other service.
func RecommendedConfig(serviceName string) Config {
	c := DefaultConfig()
	switch serviceName {
	case "datastorage", "workflowexecution":
		c.BufferSize = 50000
	case "gateway", "signalprocessing", "remediation-orchestrator":
		c.BufferSize = 30000
	case "aianalysis", "ai-analysis", "notification", "notification-controller", "effectivenessmonitor":
		c.BufferSize = 20000
	case "kubernaut-agent":
		c.BufferSize = 20000
		c.BatchSize = 50
		c.FlushInterval = 500 * time.Millisecond
	default:
		c.BufferSize = 30000
	}
	return c
}

// Validate checks the configuration as kubernaut's does.
func (c Config) Validate() error {
	switch {
	case c.BufferSize <= 0:
		return fmt.Errorf("buffer_size must be positive, got %d", c.BufferSize)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch_size must be positive, got %d", c.BatchSize)
	case c.BatchSize > c.BufferSize:
		return fmt.Errorf("batch_size (%d) must be <= buffer_size (%d)", c.BatchSize, c.BufferSize)
	case c.FlushInterval <= 0:
		return fmt.Errorf("flush_interval must be positive, got %v", c.FlushInterval)
	case c.MaxRetries < 0:
		return fmt.Errorf("max_retries must be non-negative, got %d", c.MaxRetries)
	}
	return nil
}

// pipeline is the auditbuf configuration for this one.
func (c Config) pipeline(service string) auditbuf.Config {
	return auditbuf.Config{
		Service:        service,
		QueueCapacity:  c.BufferSize,
		BatchMaxEvents: c.BatchSize,
		FlushInterval:  c.FlushInterval,
		Retry:          auditbuf.Retry{MaxAttempts: c.MaxRetries + 1},
		Store:          c.Store,
	}
}
