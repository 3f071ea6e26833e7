package auditbuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The shared vectors in testdata/events (see its README): the bytes the sink gets from
// Go are exactly those Rust produces — typed vectors through Record, raw ones through
// RecordJSON, and .error files give the right sentinel and counter.

const vectorDir = "../testdata/events"

var stamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// matchWire compares got with a .wire file, where <NOW> stands for a 24-byte timestamp.
func matchWire(got, want []byte) bool {
	before, after, found := bytes.Cut(want, []byte("<NOW>"))
	if !found {
		return bytes.Equal(got, want)
	}
	if len(got) != len(before)+24+len(after) || !bytes.HasPrefix(got, before) || !bytes.HasSuffix(got, after) {
		return false
	}
	return stamp.Match(got[len(before) : len(before)+24])
}

// typedVector turns a .typed.json file into an Event.
func typedVector(t *testing.T, text []byte) *Event {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	ev := &Event{}
	strs := map[string]*string{
		"version": &ev.Version, "event_type": &ev.EventType, "event_timestamp": &ev.EventTimestamp,
		"event_category": &ev.EventCategory, "event_action": &ev.EventAction,
		"event_outcome": &ev.EventOutcome, "correlation_id": &ev.CorrelationID,
		"actor_type": &ev.ActorType, "actor_id": &ev.ActorID, "actor_ip": &ev.ActorIP,
		"resource_type": &ev.ResourceType, "resource_id": &ev.ResourceID,
		"parent_event_id": &ev.ParentEventID, "parent_event_date": &ev.ParentEventDate,
		"namespace": &ev.Namespace, "cluster_id": &ev.ClusterID, "severity": &ev.Severity,
		"error_code": &ev.ErrorCode, "error_message": &ev.ErrorMessage,
	}
	for key, raw := range doc {
		switch key {
		case "description":
		case "event_data_json":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			ev.EventData = []byte(s)
		case "duration_ms":
			v, err := strconv.ParseUint(string(raw), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			ev.DurationMs = Some(v)
		case "retention_days":
			v, err := strconv.ParseUint(string(raw), 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			ev.RetentionDays = Some(uint32(v))
		case "is_sensitive":
			ev.IsSensitive = Some(string(raw) == "true")
		default:
			p, ok := strs[key]
			if !ok {
				t.Fatalf("unknown key %q", key)
			}
			if err := json.Unmarshal(raw, p); err != nil {
				t.Fatal(err)
			}
			if *p == "" && !required[key] {
				// A Go string cannot be present and empty: an empty optional field is
				// absent, by this package's rule, so the vector says nothing about Go.
				t.Skipf("%s is an empty optional string, which Go sends as absent", key)
			}
		}
	}
	return ev
}

// The fields a typed event must have; an empty one is sent (and refused as missing).
var required = map[string]bool{
	"event_type": true, "event_category": true, "event_action": true,
	"event_outcome": true, "correlation_id": true,
}

var reasons = map[string]struct {
	err     error
	counter func(Rejected) uint64
}{
	"invalid_json":  {ErrInvalidJSON, func(r Rejected) uint64 { return r.InvalidJSON }},
	"invalid_utf8":  {ErrInvalidUTF8, func(r Rejected) uint64 { return r.InvalidUTF8 }},
	"not_an_object": {ErrNotAnObject, func(r Rejected) uint64 { return r.NotAnObject }},
	"missing_field": {ErrMissingField, func(r Rejected) uint64 { return r.MissingField }},
	"invalid_field": {ErrInvalidField, func(r Rejected) uint64 { return r.InvalidField }},
}

func TestSharedVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil || len(files) < 10 {
		t.Fatalf("vectors: %v (%d files)", err, len(files))
	}
	var typed, raw, rejected int
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		typedVec := strings.HasSuffix(name, ".typed")
		name = strings.TrimSuffix(name, ".typed")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var col collector
			c, err := NewWithSink(Config{}, col.sink)
			if err != nil {
				t.Fatal(err)
			}
			var recErr error
			var batchErr error
			if typedVec {
				ev := typedVector(t, input)
				recErr = c.Record(ev)
				_, batchErr = c.RecordBatch([]*Event{ev})
				typed++
			} else {
				recErr = c.RecordJSON(input)
				_, batchErr = c.RecordJSONBatch([][]byte{input})
				raw++
			}
			report := mustClose(t, c)
			base := filepath.Join(vectorDir, name)
			if reason, err := os.ReadFile(base + ".error"); err == nil {
				rejected++
				want, ok := reasons[strings.TrimSpace(string(reason))]
				if !ok {
					t.Fatalf("unknown reason %q", reason)
				}
				for _, err := range []error{recErr, batchErr} {
					if !errors.Is(err, want.err) {
						t.Fatalf("got %v, want %v", err, want.err)
					}
				}
				if n := want.counter(report.Stats.Rejected); n != 2 || report.Stats.Recorded != 0 {
					t.Fatalf("counted %d times, stats %+v", n, report.Stats)
				}
				return
			}
			wire, err := os.ReadFile(base + ".wire")
			if err != nil {
				t.Fatal(err)
			}
			if recErr != nil || batchErr != nil {
				t.Fatalf("refused: %v / %v", recErr, batchErr)
			}
			got := col.got()
			if len(got) != 2 {
				t.Fatalf("sink got %d events", len(got))
			}
			for _, g := range got {
				if !matchWire(g, wire) {
					t.Fatalf("sink got\n%s\nwant\n%s", g, wire)
				}
			}
		})
	}
	if typed < 4 || raw < 10 || rejected < 8 {
		t.Fatalf("ran %d typed, %d raw, %d rejecting vectors", typed, raw, rejected)
	}
}
