package auditbuf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Config: its errors, the document it becomes, and the environment.

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := New(Config{QueueCapacity: -1, Sink: NullSink()})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "queue_capacity") {
		t.Fatalf("got %v", err)
	}
	for _, lanes := range []int{3, -1, 16} {
		_, err = New(Config{MaxLanes: lanes, Sink: NullSink()})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "max_lanes") {
			t.Fatalf("MaxLanes %d: got %v", lanes, err)
		}
	}
	_, err = New(Config{Sink: Sink{Type: SinkHTTP}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sink.url") {
		t.Fatalf("got %v", err)
	}
	_, err = New(Config{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sink") {
		t.Fatalf("got %v", err)
	}
	_, err = NewWithSink(Config{Sink: NullSink()}, func([][]byte) SinkOutcome { return SinkDelivered })
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v", err)
	}
	_, err = New(Config{FlushInterval: -time.Second, Sink: NullSink()})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "flush_interval_ms") {
		t.Fatalf("got %v", err)
	}
	_, err = New(Config{Sink: Sink{Type: SinkHTTP, URL: "http://127.0.0.1:9", TokenFile: "/nonexistent/token"}})
	if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "/nonexistent/token") {
		t.Fatalf("got %v", err)
	}
	_, err = New(Config{Sink: NullSink(), Store: &Store{Type: "tape"}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "tape") {
		t.Fatalf("got %v", err)
	}
	// An allowlist that came out empty is refused, not taken to mean any category.
	_, err = New(Config{Sink: NullSink(), Categories: []string{}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "categories") {
		t.Fatalf("empty Categories: got %v", err)
	}
}

func TestConfigErrorSaysInvalidConfigurationOnce(t *testing.T) {
	_, err := New(Config{MaxEventBytes: 10, Sink: NullSink()})
	const want = "auditbuf: invalid configuration: max_event_bytes: is 10, must be at least 64"
	if !errors.Is(err, ErrConfig) || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message != "invalid configuration: max_event_bytes: is 10, must be at least 64" {
		t.Fatalf("Message %#v", e)
	}
	// The Go side's own messages, and other sentinels' messages, are kept whole.
	if err := configError("sink: x"); err.Error() != "auditbuf: invalid configuration: sink: x" {
		t.Fatalf("got %v", err)
	}
	if err := errorOf(12, "pipeline is closed"); err.Error() != "auditbuf: closed: pipeline is closed" {
		t.Fatalf("got %v", err)
	}
}

func TestAnEmptySinkURLIsSaidToBeEmpty(t *testing.T) {
	for _, sink := range []Sink{DataStorageSink(""), HTTPSink("")} {
		_, err := New(Config{Sink: sink})
		const want = `auditbuf: invalid configuration: sink.url: "" is not a URL: empty string`
		if !errors.Is(err, ErrConfig) || err.Error() != want {
			t.Fatalf("%s: got %v\nwant %s", sink.Type, err, want)
		}
	}
	doc, err := json.Marshal(Config{Sink: DataStorageSink("")})
	if err != nil || !strings.Contains(string(doc), `"sink":{"type":"datastorage","url":""}`) {
		t.Fatalf("%s %v", doc, err)
	}
	// The null sink takes no URL: none is sent unless one was set.
	if doc, err = json.Marshal(Config{Sink: NullSink()}); err != nil || !strings.Contains(string(doc), `"sink":{"type":"null"}`) {
		t.Fatalf("%s %v", doc, err)
	}
	if _, err := New(Config{Sink: Sink{Type: SinkNull, URL: "http://x"}}); !errors.Is(err, ErrConfig) ||
		!strings.Contains(err.Error(), "sink.url") {
		t.Fatalf("got %v", err)
	}
}

func TestConfigDocument(t *testing.T) {
	cfg := Config{
		Service:       "gateway",
		QueueCapacity: 20000,
		FlushInterval: 1500 * time.Microsecond,
		Overflow:      OverflowBlock,
		BlockTimeout:  0,
		Retry:         Retry{MaxAttempts: 4, MaxElapsed: time.Minute},
		Sink: Sink{Type: SinkDataStorage, URL: "http://ds:8080", TokenFile: "/t",
			Timeout: 10 * time.Second, Headers: map[string]string{"X-A": "b"}},
		Store: FileStore("/var/lib/audit", "always"),
	}
	got, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"gateway","queue_capacity":20000,"flush_interval_ms":2,"overflow":"block",` +
		`"block_timeout_ms":0,"retry":{"max_attempts":4,"max_elapsed_ms":60000},` +
		`"sink":{"type":"datastorage","url":"http://ds:8080","headers":{"X-A":"b"},"token_file":"/t","timeout_ms":10000},` +
		`"store":{"type":"file","params":{"fsync":"always","path":"/var/lib/audit"}}}`
	if string(got) != want {
		t.Fatalf("document\n got %s\nwant %s", got, want)
	}
}

func TestConfigExplicitZeros(t *testing.T) {
	zeros := `"dead_letter_capacity":0,"initial_slot_bytes":0,"retained_slot_bytes":0,"drop_timeout_ms":0`
	cfg := Config{DeadLetterCapacity: -1, InitialSlotBytes: -512, RetainedSlotBytes: -1, DropTimeout: -time.Second}
	got, err := json.Marshal(cfg)
	if err != nil || string(got) != "{"+zeros+"}" {
		t.Fatalf("negative values: %s, %v", got, err)
	}
	if got, err := json.Marshal(Config{}); err != nil || string(got) != "{}" {
		t.Fatalf("zero values: %s, %v", got, err)
	}
	got, err = json.Marshal(Config{DeadLetterCapacity: 5, InitialSlotBytes: 64, RetainedSlotBytes: 128, DropTimeout: time.Second})
	if want := `{"dead_letter_capacity":5,"initial_slot_bytes":64,"retained_slot_bytes":128,"drop_timeout_ms":1000}`; err != nil || string(got) != want {
		t.Fatalf("positive values: %s, %v", got, err)
	}
	t.Setenv("AUDIT_CONFIG", "{"+zeros+"}")
	fromEnv, err := ConfigFromEnv("AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if fromEnv.DeadLetterCapacity != -1 || fromEnv.InitialSlotBytes != -1 || fromEnv.RetainedSlotBytes != -1 || fromEnv.DropTimeout >= 0 {
		t.Fatalf("explicit zeros read back as %+v", fromEnv)
	}
	if again, err := json.Marshal(fromEnv); err != nil || string(again) != "{"+zeros+"}" {
		t.Fatalf("read back and written again: %s, %v", again, err)
	}
	// The library takes them: slots start empty and grow, and every event is delivered.
	var col collector
	c, err := NewWithSink(fromEnv, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Record(sampleEvent(fmt.Sprintf("zero-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if r := mustClose(t, c); r.Stats.Recorded != 3 || r.Stats.Delivered != 3 || !r.Stats.IsConsistent() {
		t.Fatalf("report %+v", r)
	}
}

func TestConfigFromEnvGivesRustsErrors(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"AUDIT_CONFIG", `{"queue_capacity": 0}`,
			"auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacity: is 0, must be at least 1"},
		{"AUDIT_CONFIG", `{"queue_capacity": null}`,
			"auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacity: is null; leave the field out to keep its default at line 1 column 24"},
		{"AUDIT_CONFIG", `{"service": ""}`,
			"auditbuf: invalid configuration: AUDIT_CONFIG: service: is 0 bytes long, must be 1 to 255"},
		{"AUDIT_CONFIG", `{"queue_capacty": 5}`,
			"auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacty: unknown field `queue_capacty`, expected one of " +
				"`service`, `queue_capacity`, `max_lanes`, `max_event_bytes`, `batch_max_events`, `batch_max_bytes`, " +
				"`flush_interval_ms`, `overflow`, `block_timeout_ms`, `durability`, `retry`, `dead_letter_capacity`, " +
				"`initial_slot_bytes`, `retained_slot_bytes`, `drop_timeout_ms`, `categories`, `check_timestamp_window`, " +
				"`gap_markers` at line 1 column 16"},
		{"AUDIT_BACKING_STORE", `{"type":"file","params":{}}`,
			"auditbuf: invalid configuration: AUDIT_BACKING_STORE: params: missing field `path`"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := ConfigFromEnv("AUDIT")
			if !errors.Is(err, ErrConfig) || err.Error() != tc.want {
				t.Fatalf("%s=%s:\n got %v\nwant %s", tc.name, tc.value, err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != 30 || "auditbuf: "+e.Message != tc.want {
				t.Fatalf("want the library's message as Message, got %#v", e)
			}
		})
	}
	// Unset variables keep the defaults; the check opens nothing.
	t.Setenv("AUDIT_BACKING_STORE", `{"type":"file","params":{"path":"/nonexistent/audit"}}`)
	if cfg, err := ConfigFromEnv("AUDIT"); err != nil || cfg.Store == nil || cfg.QueueCapacity != 0 {
		t.Fatalf("%+v, %v", cfg, err)
	}
	if _, err := ConfigFromEnv("AU\xffDIT"); !errors.Is(err, ErrConfig) {
		t.Fatalf("a prefix that is not UTF-8: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUDIT_CONFIG", `{"queue_capacity":7,"max_lanes":4,"durability":"wal","overflow":"block","block_timeout_ms":5,"retry":{"max_attempts":3},"gap_markers":true,"categories":["gateway"],"check_timestamp_window":true}`)
	t.Setenv("AUDIT_BACKING_STORE", `{"type":"file","params":{"path":`+fmt.Sprintf("%q", dir)+`,"max_total_bytes":1073741824,"fsync":"always"}}`)
	cfg, err := ConfigFromEnv("AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueueCapacity != 7 || cfg.MaxLanes != 4 || cfg.Durability != DurabilityWAL || cfg.BlockTimeout != 5*time.Millisecond ||
		cfg.Retry.MaxAttempts != 3 || cfg.Store == nil || cfg.Store.Type != "file" ||
		!cfg.GapMarkers || len(cfg.Categories) != 1 || !cfg.CheckTimestampWindow {
		t.Fatalf("config %+v", cfg)
	}
	var col collector
	c, err := NewWithSink(cfg, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(sampleEvent("wal-1")); err != nil {
		t.Fatal(err)
	}
	if r := mustClose(t, c); r.Stats.Delivered != 1 {
		t.Fatalf("report %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Errorf("the file store was not used: %v", err)
	}
	// The library checks both values with Rust's rules: every error wraps ErrConfig and is
	// the variable's name followed by Rust's message (a prefix: the rest lists every field).
	for _, tc := range []struct{ name, value, want string }{
		{"AUDIT_CONFIG", `{"queue_capacty":5}`, "auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacty: " +
			"unknown field `queue_capacty`, expected one of `service`, `queue_capacity`, "},
		{"AUDIT_CONFIG", `{"sink":{"type":"null"}}`, "auditbuf: invalid configuration: AUDIT_CONFIG: sink: " +
			"unknown field `sink`, expected one of `service`, "},
		{"AUDIT_CONFIG", `{"queue_capacity":"5"}`, "auditbuf: invalid configuration: AUDIT_CONFIG: queue_capacity: invalid type: string"},
		{"AUDIT_CONFIG", `{} {}`, "auditbuf: invalid configuration: AUDIT_CONFIG: (document): trailing characters"},
		{"AUDIT_CONFIG", ``, "auditbuf: invalid configuration: AUDIT_CONFIG: (document): is empty, must be a JSON object"},
		{"AUDIT_CONFIG", "{\"service\":\"\xff\"}", "auditbuf: invalid configuration: AUDIT_CONFIG: is not valid UTF-8"},
		{"AUDIT_BACKING_STORE", `{"type":"file","prams":{}}`, "auditbuf: invalid configuration: AUDIT_BACKING_STORE: prams: unknown field `prams`"},
		{"AUDIT_BACKING_STORE", `file`, "auditbuf: invalid configuration: AUDIT_BACKING_STORE: (document): must be a JSON object"},
		{"AUDIT_BACKING_STORE", `{"params":{}}`, "auditbuf: invalid configuration: AUDIT_BACKING_STORE: (document): missing field `type`"},
		{"AUDIT_BACKING_STORE", `{"type":"file","params":{"pth":"/x"}}`, "auditbuf: invalid configuration: AUDIT_BACKING_STORE: params.pth: unknown field `pth`"},
	} {
		t.Setenv("AUDIT_CONFIG", "{}")
		t.Setenv("AUDIT_BACKING_STORE", `{"type":"memory","params":{}}`)
		t.Setenv(tc.name, tc.value)
		_, err := ConfigFromEnv("AUDIT")
		if !errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s=%s:\n got %v\nwant %s…", tc.name, tc.value, err, tc.want)
		}
	}
	if v := Version(); v == "" {
		t.Error("no version")
	}
}

func TestDurationsRoundUpToMillisecondsWithoutOverflow(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint64
	}{
		{0, 0}, {1, 1}, {time.Millisecond, 1}, {time.Millisecond + 1, 2},
		{time.Duration(math.MaxInt64), math.MaxInt64/uint64(time.Millisecond) + 1},
	} {
		if got := ceilMs(c.d); got != c.want {
			t.Errorf("ceilMs(%d) = %d, want %d", c.d, got, c.want)
		}
	}
}
