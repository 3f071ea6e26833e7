package auditbuf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The "rabbitmq" sink type: the document Go writes, what the library makes of it, the
// environment read like the core's PipelineConfig::from_env, and a client whose broker
// refuses connections accounting for every event. (Publishing to a real broker is
// tested by the core, core/tests/rabbitmq_sink.rs.)

// refusedURL is an amqp:// URL of a port on 127.0.0.1 that refuses connections: one just
// listened on, and closed.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "amqp://guest:hunter22@" + addr + "/%2f"
}

func TestRabbitMQSinkDocument(t *testing.T) {
	cfg := Config{Sink: Sink{
		Type: SinkRabbitMQ, URL: "amqps://audit:secret@rabbit:5671/%2f", Queue: "notifications.info",
		Exchange: "audit", RoutingKey: "k", NoDeclare: true, ConnectTimeout: 100 * time.Millisecond,
		Timeout: 2 * time.Second, CAFile: "/etc/ca.pem",
	}}
	got, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sink":{"type":"rabbitmq","url":"amqps://audit:secret@rabbit:5671/%2f","queue":"notifications.info",` +
		`"exchange":"audit","routing_key":"k","declare":false,"connect_timeout_ms":100,"timeout_ms":2000,"ca_file":"/etc/ca.pem"}}`
	if string(got) != want {
		t.Fatalf("document\n got %s\nwant %s", got, want)
	}
	// The document read back is the same sink, with every field.
	var back struct{ Sink sinkDoc }
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	d := back.Sink
	if d.Type != SinkRabbitMQ || d.URL == nil || *d.URL != cfg.Sink.URL || d.Queue != "notifications.info" || d.Exchange != "audit" ||
		d.RoutingKey != "k" || d.Declare == nil || *d.Declare || d.ConnectTimeoutMs != 100 || d.TimeoutMs != 2000 ||
		d.CAFile != "/etc/ca.pem" {
		t.Fatalf("read back %+v", d)
	}
	// Declaring is the default: "declare" is only written to turn it off.
	got, err = json.Marshal(Config{Sink: RabbitMQSink("amqp://h", "q")})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"sink":{"type":"rabbitmq","url":"amqp://h","queue":"q"}}`; string(got) != want {
		t.Fatalf("document\n got %s\nwant %s", got, want)
	}

	// The library reads the document: a good one makes a client (connected on first use),
	// and each bad field is named, never showing the password.
	url := refusedURL(t)
	c, err := New(Config{Sink: Sink{Type: SinkRabbitMQ, URL: url, Queue: "audit", Exchange: "x",
		RoutingKey: "k", NoDeclare: true, ConnectTimeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, c)
	for _, tc := range []struct {
		sink  Sink
		field string
	}{
		{Sink{Type: SinkRabbitMQ, URL: "http://guest:hunter22@127.0.0.1/", Queue: "q"}, "sink.url"},
		{Sink{Type: SinkRabbitMQ, URL: "amqp://guest:hunter22@"}, "sink.url"},
		{Sink{Type: SinkRabbitMQ, URL: url}, "sink.queue"},
		{Sink{Type: SinkRabbitMQ, URL: url, Exchange: "x"}, "sink.routing_key"},
		{Sink{Type: SinkRabbitMQ, URL: url, Queue: strings.Repeat("q", 256)}, "sink.queue"},
		{Sink{Type: SinkRabbitMQ, URL: url, Queue: "q", Format: "ndjson"}, "sink.format"},
		{Sink{Type: SinkRabbitMQ, URL: url, Queue: "q", BearerToken: "t"}, "sink.bearer_token"},
		{Sink{Type: SinkHTTP, URL: "http://127.0.0.1:9", Queue: "q"}, "sink.queue"},
		{Sink{Type: SinkDataStorage, URL: "http://127.0.0.1:9", NoDeclare: true}, "sink.declare"},
	} {
		_, err := New(Config{Sink: tc.sink})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) ||
			strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%+v: %v (want %s)", tc.sink, err, tc.field)
		}
	}
	// A sink's fields without a sink type are not dropped silently.
	if _, err := NewWithSink(Config{Sink: Sink{Queue: "q"}}, (&collector{}).sink); !errors.Is(err, ErrConfig) {
		t.Errorf("NewWithSink with Sink.Queue set: %v", err)
	}
}

// A broker that refuses connections: New succeeds, events are taken, every send fails,
// and each event ends counted where the configuration puts it. Without a store they fail
// once the retries run out. A store keeps them: at Close a file store still holds them
// (the next client recovers them), while a memory store ends with the client, so Close
// counts them dropped at shutdown.
func TestRabbitMQSinkWithTheBrokerDown(t *testing.T) {
	const n = 5
	const closeTimeout = 2500 * time.Millisecond
	record := func(t *testing.T, c *Client) {
		for i := 0; i < n-1; i++ {
			ev := minimalCADF()
			ev.ID = fmt.Sprintf("event-%d", i)
			if err := c.RecordCADF(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.RecordJSON([]byte(`{"id":"raw-1","action":"read"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// settled waits until the retries of every event have run out.
	settled := func(t *testing.T, c *Client) Stats {
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := c.Stats()
			if !s.IsConsistent() {
				t.Fatalf("inconsistent %+v", s)
			}
			if s.Stored+s.Failed >= n {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("still not settled: %+v", s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, store := range []string{"none", "memory", "file"} {
		t.Run(store, func(t *testing.T) {
			cfg := Config{
				FlushInterval: 5 * time.Millisecond,
				Retry:         Retry{MaxElapsed: 200 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond},
				Sink:          Sink{Type: SinkRabbitMQ, URL: refusedURL(t), Queue: "audit", ConnectTimeout: 500 * time.Millisecond},
			}
			switch store {
			case "memory":
				cfg.Store = MemoryStore()
			case "file":
				cfg.Store = FileStore(t.TempDir(), "")
			}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			record(t, c)
			during := settled(t, c)
			// With a store, Close tries to drain it until its deadline, less its reserve
			// for stopping (a tenth, at most 250 ms).
			r, err := c.Close(ctxFor(t, closeTimeout))
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			s := r.Stats
			if !s.IsConsistent() || s.Recorded != n || s.Delivered != 0 || s.DeadLettered != 0 ||
				s.Sends == 0 || s.Retries == 0 || s.BatchesFailed == 0 {
				t.Fatalf("stats %+v", s)
			}
			switch store {
			case "none":
				if s.Failed != n || s.Stored != 0 || s.Dropped.Total() != 0 {
					t.Fatalf("failed without a store: %+v", s)
				}
			case "memory":
				if during.Stored != n || s.Dropped.Shutdown != n || s.Stored != 0 || s.Failed != 0 {
					t.Fatalf("kept in memory, lost at Close: during %+v, at Close %+v", during, s)
				}
			case "file":
				if during.Stored != n || s.Stored != n || s.Failed != 0 || s.Dropped.Total() != 0 {
					t.Fatalf("kept in the file store: during %+v, at Close %+v", during, s)
				}
				// The next client finds them in the store, and keeps them there.
				c, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				r, err := c.Close(ctxFor(t, closeTimeout))
				if err != nil || r.Stats.Recovered != n || r.Stats.Stored != n || !r.Stats.IsConsistent() {
					t.Fatalf("reopened: %+v, %v", r.Stats, err)
				}
			}
		})
	}
}

func TestConfigFromEnvReadsTheRabbitMQSink(t *testing.T) {
	vars := []string{"URL", "QUEUE", "QUEUE_NAME", "HOSTNAME", "PORT", "USERNAME", "PASSWORD"}
	// set gives exactly these variables, the others unset (t.Setenv restores them all).
	set := func(pairs ...string) {
		t.Helper()
		for _, v := range append([]string{"CONFIG", "BACKING_STORE"}, vars...) {
			name := "AUDIT_RABBITMQ_" + v
			if v == "CONFIG" || v == "BACKING_STORE" {
				name = "AUDIT_" + v
			}
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < len(pairs); i += 2 {
			t.Setenv("AUDIT_RABBITMQ_"+pairs[i], pairs[i+1])
		}
	}
	set()
	t.Setenv("AUDIT_CONFIG", `{"queue_capacity":7}`)
	cfg, err := ConfigFromEnv("AUDIT")
	if err != nil || !cfg.Sink.isZero() || cfg.QueueCapacity != 7 {
		t.Fatalf("no RabbitMQ variable: %+v, %v", cfg, err)
	}

	set("URL", "amqp://u:p@rabbit/%2f", "QUEUE", "notifications.info")
	t.Setenv("AUDIT_CONFIG", `{"queue_capacity":7}`)
	cfg, err = ConfigFromEnv("AUDIT")
	if err != nil || cfg.QueueCapacity != 7 {
		t.Fatal(cfg, err)
	}
	if want := RabbitMQSink("amqp://u:p@rabbit/%2f", "notifications.info"); !sameSink(cfg.Sink, want) {
		t.Fatalf("sink %+v", cfg.Sink)
	}
	// audittools' variables: the URL in parts, percent-encoded, with its defaults.
	set("HOSTNAME", "rabbit", "PASSWORD", "p@ss:w/rd", "QUEUE_NAME", "notifications.info")
	cfg, err = ConfigFromEnv("AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if want := RabbitMQSink("amqp://guest:p%40ss%3Aw%2Frd@rabbit:5672/%2f", "notifications.info"); !sameSink(cfg.Sink, want) {
		t.Fatalf("sink %+v", cfg.Sink)
	}
	set("HOSTNAME", "::1", "PORT", "5673", "USERNAME", "audit", "QUEUE", "q")
	if cfg, err = ConfigFromEnv("AUDIT"); err != nil || cfg.Sink.URL != "amqp://audit:guest@[::1]:5673/%2f" {
		t.Fatalf("%+v, %v", cfg.Sink, err)
	}

	// The environment's sink is the client's: a broker that refuses connections keeps the
	// events (the round trip env → Config → document → library).
	u := strings.TrimPrefix(refusedURL(t), "amqp://guest:hunter22@")
	host, port, _ := strings.Cut(strings.TrimSuffix(u, "/%2f"), ":")
	set("HOSTNAME", host, "PORT", port, "QUEUE_NAME", "audit")
	t.Setenv("AUDIT_CONFIG", `{"retry":{"max_attempts":1}}`)
	t.Setenv("AUDIT_BACKING_STORE", fmt.Sprintf(`{"type":"file","params":{"path":%q}}`, t.TempDir()))
	cfg, err = ConfigFromEnv("AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordCADF(minimalCADF()); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Close(ctxFor(t, 2500*time.Millisecond)); err != nil || !r.Stats.IsConsistent() ||
		r.Stats.Recorded != 1 || r.Stats.Stored != 1 || r.Stats.Sends == 0 {
		t.Fatalf("report %+v, %v", r, err)
	}
	if _, err := NewWithSink(cfg, (&collector{}).sink); !errors.Is(err, ErrConfig) {
		t.Errorf("NewWithSink with the environment's sink: %v", err)
	}

	// Errors name the variable, as the core's do, and never show the password.
	for _, tc := range []struct {
		pairs []string
		field string
	}{
		{[]string{"URL", "amqp://h"}, "AUDIT_RABBITMQ_QUEUE: missing"},
		{[]string{"QUEUE", "q", "QUEUE_NAME", "q"}, "AUDIT_RABBITMQ_QUEUE_NAME: set AUDIT_RABBITMQ_QUEUE or this"},
		{[]string{"URL", "amqp://h", "PORT", "1", "QUEUE", "q"}, "AUDIT_RABBITMQ_PORT: set AUDIT_RABBITMQ_URL"},
		{[]string{"PORT", "x", "QUEUE", "q"}, "AUDIT_RABBITMQ_PORT: must be a port number"},
		{[]string{"PORT", "65536", "QUEUE", "q"}, "AUDIT_RABBITMQ_PORT: must be a port number"},
		{[]string{"URL", "", "QUEUE", "q"}, "AUDIT_RABBITMQ_URL: is empty, must be an amqp:// or amqps:// URL"},
		{[]string{"URL", "http://u:hunter22@h", "QUEUE", "q"}, "AUDIT_RABBITMQ_URL: http://u:***@h: must start with amqp://"},
		{[]string{"URL", "amqp://u:hunter22@", "QUEUE", "q"}, "AUDIT_RABBITMQ_URL: amqp://u:***@: names no host"},
		{[]string{"URL", "amqp://h", "QUEUE_NAME", ""}, "AUDIT_RABBITMQ_QUEUE: must not be empty"},
		{[]string{"PASSWORD", "x", "QUEUE", strings.Repeat("q", 256)}, "AUDIT_RABBITMQ_QUEUE: must be at most 255 bytes"},
		{[]string{"URL", "amqp://h", "QUEUE", "bad \xff"}, "AUDIT_RABBITMQ_QUEUE: is not valid UTF-8"},
	} {
		set(tc.pairs...)
		_, err := ConfigFromEnv("AUDIT")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%q: %v (want %s)", tc.pairs, err, tc.field)
		}
	}
	if got := redactURL("amqp://a@b:c@h/x@y"); got != "amqp://a@b:***@h/x@y" {
		t.Errorf("redactURL: %s", got)
	}
	if got := redactURL("secret"); got != "(not an amqp:// URL)" {
		t.Errorf("redactURL: %s", got)
	}
	if !isPort("+5672") || isPort("+") || isPort("-1") || isPort("") || !isPort("065535") {
		t.Error("isPort differs from Rust's u16 parsing")
	}
}

func sameSink(a, b Sink) bool { return reflect.DeepEqual(a, b) }
