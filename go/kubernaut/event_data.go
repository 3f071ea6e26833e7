package kubernaut

import (
	"encoding/json"
	"fmt"
)

// CommonEnvelope is kubernaut's standard event_data: the service, operation and status
// around a service-specific payload.
type CommonEnvelope struct {
	Version       string                 `json:"version"`
	Service       string                 `json:"service"`
	Operation     string                 `json:"operation"`
	Status        string                 `json:"status"`
	Payload       map[string]interface{} `json:"payload"`
	SourcePayload map[string]interface{} `json:"source_payload,omitempty"`
}

// NewEventData returns an envelope with Version "1.0".
func NewEventData(service, operation, status string, payload map[string]interface{}) *CommonEnvelope {
	return &CommonEnvelope{
		Version:   "1.0",
		Service:   service,
		Operation: operation,
		Status:    status,
		Payload:   payload,
	}
}

// WithSourcePayload adds the original external payload and returns the envelope.
func (e *CommonEnvelope) WithSourcePayload(sourcePayload map[string]interface{}) *CommonEnvelope {
	e.SourcePayload = sourcePayload
	return e
}

// ToJSON returns the envelope as JSON, for AuditEvent.EventData.
func (e *CommonEnvelope) ToJSON() ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal event data: %w", err)
	}
	return data, nil
}

// FromJSON parses an envelope.
func FromJSON(data []byte) (*CommonEnvelope, error) {
	var envelope CommonEnvelope
	if err := json.Unmarshal(data, &envelope); err != nil {
		return nil, fmt.Errorf("failed to unmarshal event data: %w", err)
	}
	return &envelope, nil
}

// Validate checks the envelope's required fields.
func (e *CommonEnvelope) Validate() error {
	switch {
	case e.Version == "":
		return fmt.Errorf("version is required")
	case e.Service == "":
		return fmt.Errorf("service is required")
	case e.Operation == "":
		return fmt.Errorf("operation is required")
	case e.Status == "":
		return fmt.Errorf("status is required")
	case e.Payload == nil:
		return fmt.Errorf("payload is required")
	}
	return nil
}
