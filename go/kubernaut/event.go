package kubernaut

import (
	"fmt"
	"time"
)

// AuditEvent has the field names and types of kubernaut's pkg/audit AuditEvent, so code
// that fills one compiles unchanged. Differences: there is no EventID (the DataStorage
// server assigns event ids, and does no de-duplication); ParentEventID is a *string (a
// UUID's text) rather than a *uuid.UUID; ResourceName, TraceID, SpanID and EventMetadata
// are accepted but not sent (the DataStorage AuditEventRequest has no such fields).
type AuditEvent struct {
	// EventVersion is the schema version (default "1.0").
	EventVersion string `json:"version"`
	// EventTimestamp is when the event occurred; NewAuditEvent sets time.Now().UTC().
	// The zero time sends the time of StoreAudit. Sent in UTC with milliseconds.
	EventTimestamp time.Time `json:"event_timestamp"`

	EventType     string `json:"event_type"`     // e.g. "gateway.signal.received"; required
	EventCategory string `json:"event_category"` // e.g. "signal"; required
	EventAction   string `json:"event_action"`   // e.g. "received"; required
	EventOutcome  string `json:"event_outcome"`  // "success", "failure" or "pending"; required

	ActorType string  `json:"actor_type"` // e.g. "service"; required
	ActorID   string  `json:"actor_id"`   // e.g. "gateway"; required
	ActorIP   *string `json:"actor_ip,omitempty"`

	ResourceType string  `json:"resource_type"` // e.g. "Signal"; required
	ResourceID   string  `json:"resource_id"`   // e.g. "fp-abc123"; required
	ResourceName *string `json:"resource_name,omitempty"`

	CorrelationID   string     `json:"correlation_id"` // e.g. "remediation-123"; required
	ParentEventID   *string    `json:"parent_event_id,omitempty"`
	ParentEventDate *time.Time `json:"parent_event_date,omitempty"`
	TraceID         *string    `json:"trace_id,omitempty"`
	SpanID          *string    `json:"span_id,omitempty"`

	Namespace *string `json:"namespace,omitempty"`
	ClusterID *string `json:"cluster_id,omitempty"`

	// EventData is the JSON object of the payload (use NewEventData(…).ToJSON());
	// required. Its "event_type" is added when missing.
	EventData     []byte `json:"event_data"`
	EventMetadata []byte `json:"event_metadata,omitempty"`

	Severity     *string `json:"severity,omitempty"`
	DurationMs   *int    `json:"duration_ms,omitempty"`
	ErrorCode    *string `json:"error_code,omitempty"`
	ErrorMessage *string `json:"error_message,omitempty"`

	// RetentionDays is sent when positive; NewAuditEvent sets 2555 (7 years).
	RetentionDays int  `json:"retention_days"`
	IsSensitive   bool `json:"is_sensitive"`
}

// NewAuditEvent returns an event with kubernaut's defaults: version "1.0", timestamp
// time.Now().UTC(), RetentionDays 2555, IsSensitive false.
func NewAuditEvent() *AuditEvent {
	return &AuditEvent{
		EventVersion:   "1.0",
		EventTimestamp: time.Now().UTC(),
		RetentionDays:  2555,
	}
}

// Validate checks the fields kubernaut requires (which are more than the DataStorage
// service does).
func (e *AuditEvent) Validate() error {
	required := [...]struct{ name, value string }{
		{"event_type", e.EventType}, {"event_category", e.EventCategory},
		{"event_action", e.EventAction}, {"event_outcome", e.EventOutcome},
		{"actor_type", e.ActorType}, {"actor_id", e.ActorID},
		{"resource_type", e.ResourceType}, {"resource_id", e.ResourceID},
		{"correlation_id", e.CorrelationID},
	}
	for _, f := range required {
		if f.value == "" {
			return fmt.Errorf("%s is required", f.name)
		}
	}
	if len(e.EventData) == 0 {
		return fmt.Errorf("event_data is required")
	}
	if e.RetentionDays < 0 {
		return fmt.Errorf("retention_days must not be negative, got %d", e.RetentionDays)
	}
	if e.DurationMs != nil && *e.DurationMs < 0 {
		return fmt.Errorf("duration_ms must not be negative, got %d", *e.DurationMs)
	}
	return nil
}
