package auditbuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// CADF events through RecordCADF: every field on the wire, generated id and time, lists
// longer than the shim converts on its stack, each refusal with its sentinel, field and
// counter, the shared cadf_* vectors, and no allocation per call.

var (
	uuidV4   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	cadfTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)
)

func cadfResource(typeURI, id string) CADFResource { return CADFResource{TypeURI: typeURI, ID: id} }

func minimalCADF() *CADFEvent {
	return &CADFEvent{
		Action:    "create",
		Outcome:   "success",
		Initiator: cadfResource("service/security/account/user", "u-1"),
		Target:    cadfResource("compute/server", "s-1"),
		Observer:  cadfResource("service/compute", "nova-api-01"),
	}
}

func TestRecordCADFSendsEveryField(t *testing.T) {
	var col collector
	c, err := NewWithSink(Config{Service: "nova"}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	// More addresses and attachments than the shim converts on its stack (16 each).
	var addresses []CADFAddress
	for i := 0; i < 20; i++ {
		addresses = append(addresses, CADFAddress{URL: fmt.Sprintf("https://h%d.example/v3", i)})
	}
	addresses[0].Name = "public"
	var many []CADFAttachment
	for i := 0; i < 17; i++ {
		many = append(many, CADFAttachment{TypeURI: "xs:int", Content: fmt.Sprint(i), ContentIsJSON: true})
	}
	ev := &CADFEvent{
		ID:        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		EventTime: "2026-11-23T10:15:30.123456+00:00",
		EventType: "activity",
		Action:    "create",
		Outcome:   "failure",
		Reason:    CADFReason{ReasonType: "HTTP", ReasonCode: "409"},
		Initiator: CADFResource{
			TypeURI: "service/security/account/user", Name: "ada", Domain: "Default", ID: "u-1",
			Addresses: addresses,
			Host:      CADFHost{Address: "10.0.0.7", Agent: "curl/8"},
			Attachments: []CADFAttachment{
				{Name: "token", TypeURI: "xs:string", Content: `scoped "quoted"`},
			},
			ProjectID: "p-1", DomainID: "d-1", ProjectName: "payments", ProjectDomainName: "PD",
			DomainName: "DN", AppCredentialID: "ac-31",
		},
		Target:   CADFResource{TypeURI: "compute/server", ID: "s-99", Attachments: many},
		Observer: cadfResource("service/compute", "nova-api-01"),
		Attachments: []CADFAttachment{
			{Name: "payload", TypeURI: "mime:application/json", Content: "{\"flavor\": \"m1.small\",\n \"count\": 2}", ContentIsJSON: true},
			{TypeURI: "xs:string", Content: "quota exceeded"},
		},
		RequestPath: "/v2.1/servers",
	}
	if err := c.RecordCADF(ev); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordCADF(minimalCADF()); err != nil {
		t.Fatal(err)
	}
	r := mustClose(t, c)
	if r.Stats.Recorded != 2 || r.Stats.Delivered != 2 {
		t.Fatalf("stats %+v", r.Stats)
	}
	got := col.got()
	if len(got) != 2 {
		t.Fatalf("sink got %d events", len(got))
	}
	full := string(got[0])
	for _, part := range []string{
		`{"typeURI":"http://schemas.dmtf.org/cloud/audit/1.0/event","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
			`"eventTime":"2026-11-23T10:15:30.123456+00:00","eventType":"activity","action":"create","outcome":"failure",` +
			`"reason":{"reasonType":"HTTP","reasonCode":"409"},` +
			`"initiator":{"typeURI":"service/security/account/user","name":"ada","domain":"Default","id":"u-1",` +
			`"addresses":[{"url":"https://h0.example/v3","name":"public"},{"url":"https://h1.example/v3"},`,
		`{"url":"https://h19.example/v3"}],"host":{"address":"10.0.0.7","agent":"curl/8"},` +
			`"attachments":[{"name":"token","typeURI":"xs:string","content":"scoped \"quoted\""}],` +
			`"project_id":"p-1","domain_id":"d-1","project_name":"payments","project_domain_name":"PD",` +
			`"domain_name":"DN","app_credential_id":"ac-31"},`,
		`"target":{"typeURI":"compute/server","id":"s-99","attachments":[{"typeURI":"xs:int","content":0},`,
		`{"typeURI":"xs:int","content":16}]},"observer":{"typeURI":"service/compute","id":"nova-api-01"},` +
			`"attachments":[{"name":"payload","typeURI":"mime:application/json","content":{"flavor": "m1.small",  "count": 2}},` +
			`{"typeURI":"xs:string","content":"quota exceeded"}],"requestPath":"/v2.1/servers"}`,
	} {
		if !strings.Contains(full, part) {
			t.Fatalf("event\n%s\nlacks\n%s", full, part)
		}
	}
	var doc struct {
		Initiator struct{ Addresses []CADFAddress }
		Target    struct{ Attachments []json.RawMessage }
	}
	if err := json.Unmarshal(got[0], &doc); err != nil {
		t.Fatalf("%v: %s", err, full)
	}
	if len(doc.Initiator.Addresses) != 20 || len(doc.Target.Attachments) != 17 {
		t.Fatalf("lists of %d addresses, %d attachments", len(doc.Initiator.Addresses), len(doc.Target.Attachments))
	}
	// Left out: typeURI, eventType, id (a UUID v4) and eventTime are filled in.
	var gen map[string]any
	if err := json.Unmarshal(got[1], &gen); err != nil {
		t.Fatal(err)
	}
	if gen["typeURI"] != "http://schemas.dmtf.org/cloud/audit/1.0/event" || gen["eventType"] != "activity" ||
		!uuidV4.MatchString(fmt.Sprint(gen["id"])) || !cadfTime.MatchString(fmt.Sprint(gen["eventTime"])) {
		t.Fatalf("generated fields: %s", got[1])
	}
	for _, absent := range []string{"reason", "attachments", "requestPath", "name", "host"} {
		if bytes.Contains(got[1], []byte(`"`+absent+`"`)) {
			t.Fatalf("%s sent: %s", absent, got[1])
		}
	}
}

// From 8 goroutines at once (each with its own pooled encoder): every event arrives
// intact, each with an id of its own.
func TestRecordCADFConcurrentlyGeneratesAFreshIDEachTime(t *testing.T) {
	var col collector
	c, err := NewWithSink(Config{}, col.sink)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := minimalCADF()
			ev.RequestPath = fmt.Sprintf("/g%d", g)
			ev.Initiator.Addresses = []CADFAddress{{URL: fmt.Sprintf("https://g%d", g)}}
			for i := 0; i < each; i++ {
				if err := c.RecordCADF(ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mustClose(t, c)
	seen := map[string]bool{}
	paths := map[string]int{}
	for _, e := range col.got() {
		var doc struct {
			ID          string
			RequestPath string
			Initiator   struct{ Addresses []CADFAddress }
		}
		if err := json.Unmarshal(e, &doc); err != nil || !uuidV4.MatchString(doc.ID) || seen[doc.ID] {
			t.Fatalf("id %q (%v) in %s", doc.ID, err, e)
		}
		if len(doc.Initiator.Addresses) != 1 || doc.Initiator.Addresses[0].URL != "https://"+doc.RequestPath[1:] {
			t.Fatalf("mixed up: %s", e)
		}
		seen[doc.ID] = true
		paths[doc.RequestPath]++
	}
	if len(seen) != goroutines*each || len(paths) != goroutines {
		t.Fatalf("%d ids, paths %v", len(seen), paths)
	}
	for p, n := range paths {
		if n != each {
			t.Fatalf("%s: %d events", p, n)
		}
	}
}

func TestRecordCADFRefusals(t *testing.T) {
	c, err := New(Config{MaxEventBytes: 1024, Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(mutate func(ev *CADFEvent), want error, text string) {
		t.Helper()
		ev := minimalCADF()
		mutate(ev)
		err := c.RecordCADF(ev)
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Message, text) {
			t.Fatalf("%v does not name %q", err, text)
		}
	}
	check(func(ev *CADFEvent) { ev.Outcome = "ok" }, ErrInvalidField, "outcome")
	check(func(ev *CADFEvent) { ev.EventType = "audit" }, ErrInvalidField, "eventType")
	check(func(ev *CADFEvent) { ev.EventTime = "2026-11-23 10:15:30" }, ErrInvalidField, "eventTime")
	check(func(ev *CADFEvent) { ev.ID = strings.Repeat("x", 256) }, ErrInvalidField, "id")
	check(func(ev *CADFEvent) { ev.Initiator.Name = "bad \xc3\x28" }, ErrInvalidField, "initiator.name")
	check(func(ev *CADFEvent) { ev.Observer.Host.Agent = "nul\x00" }, ErrInvalidField, "observer.host.agent")
	check(func(ev *CADFEvent) { ev.Action = "" }, ErrMissingField, "action")
	check(func(ev *CADFEvent) { ev.Outcome = "" }, ErrMissingField, "outcome")
	check(func(ev *CADFEvent) { ev.Target.ID = "" }, ErrMissingField, "target.id")
	check(func(ev *CADFEvent) {
		ev.Target.Addresses = []CADFAddress{{URL: "https://a"}, {Name: "no url"}}
	}, ErrMissingField, "required field target.addresses[1].url is empty")
	check(func(ev *CADFEvent) {
		ev.Attachments = []CADFAttachment{{TypeURI: "mime:application/json", Content: `{"a":1,"a":2}`, ContentIsJSON: true}}
	}, ErrInvalidJSON, "")
	check(func(ev *CADFEvent) {
		ev.Attachments = []CADFAttachment{{TypeURI: "xs:string", Content: strings.Repeat("a", 2000)}}
	}, ErrTooLarge, "max_event_bytes limit of 1024")
	s := c.Stats()
	rj := s.Rejected
	if rj.InvalidField != 6 || rj.MissingField != 4 || rj.InvalidJSON != 1 || rj.TooLarge != 1 || s.Recorded != 0 {
		t.Fatalf("rejections counted %+v", s)
	}
	// The same event as text content, not JSON, is taken: a JSON string holding the text.
	ev := minimalCADF()
	ev.Attachments = []CADFAttachment{{TypeURI: "xs:string", Content: `{"a":1,"a":2}`}}
	if err := c.RecordCADF(ev); err != nil {
		t.Fatal(err)
	}
	if r := mustClose(t, c); r.Stats.Recorded != 1 || r.Stats.Delivered != 1 {
		t.Fatalf("report %+v", r)
	}
	if err := c.RecordCADF(minimalCADF()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A .cadf vector, decoded by wire name. Optional strings are pointers, so that a vector
// with one present and empty (which Go cannot send: "" is absent) can be skipped.
type cadfVector struct {
	Description string          `json:"description"`
	TypeURI     *string         `json:"typeURI"`
	ID          *string         `json:"id"`
	EventTime   *string         `json:"eventTime"`
	EventType   *string         `json:"eventType"`
	Action      string          `json:"action"`
	Outcome     string          `json:"outcome"`
	Reason      *cadfVecReason  `json:"reason"`
	Initiator   cadfVecResource `json:"initiator"`
	Target      cadfVecResource `json:"target"`
	Observer    cadfVecResource `json:"observer"`
	Attachments []cadfVecAttach `json:"attachments"`
	RequestPath *string         `json:"requestPath"`
}

type cadfVecReason struct {
	ReasonType *string `json:"reasonType"`
	ReasonCode *string `json:"reasonCode"`
}

type cadfVecResource struct {
	TypeURI   string `json:"typeURI"`
	Name      *string
	Domain    *string
	ID        string `json:"id"`
	Addresses []struct {
		URL  string  `json:"url"`
		Name *string `json:"name"`
	} `json:"addresses"`
	Host *struct {
		ID, Address, Agent, Platform *string
	} `json:"host"`
	Attachments       []cadfVecAttach `json:"attachments"`
	ProjectID         *string         `json:"project_id"`
	DomainID          *string         `json:"domain_id"`
	ProjectName       *string         `json:"project_name"`
	ProjectDomainName *string         `json:"project_domain_name"`
	DomainName        *string         `json:"domain_name"`
	AppCredentialID   *string         `json:"app_credential_id"`
}

type cadfVecAttach struct {
	Name        *string `json:"name"`
	TypeURI     string  `json:"typeURI"`
	Content     *string `json:"content"`
	ContentJSON *string `json:"content_json"`
}

// cadfOf turns a vector into a CADFEvent; empty is set when an optional string is present
// and empty.
func cadfOf(v *cadfVector) (ev *CADFEvent, empty bool) {
	opt := func(p *string) string {
		if p == nil {
			return ""
		}
		if *p == "" {
			empty = true
		}
		return *p
	}
	attach := func(list []cadfVecAttach) []CADFAttachment {
		var out []CADFAttachment
		for _, a := range list {
			at := CADFAttachment{Name: opt(a.Name), TypeURI: a.TypeURI}
			if a.ContentJSON != nil {
				at.Content, at.ContentIsJSON = *a.ContentJSON, true
			} else if a.Content != nil {
				at.Content = *a.Content
			}
			out = append(out, at)
		}
		return out
	}
	resource := func(r *cadfVecResource) CADFResource {
		out := CADFResource{
			TypeURI: r.TypeURI, Name: opt(r.Name), Domain: opt(r.Domain), ID: r.ID,
			Attachments: attach(r.Attachments), ProjectID: opt(r.ProjectID), DomainID: opt(r.DomainID),
			ProjectName: opt(r.ProjectName), ProjectDomainName: opt(r.ProjectDomainName),
			DomainName: opt(r.DomainName), AppCredentialID: opt(r.AppCredentialID),
		}
		for _, a := range r.Addresses {
			out.Addresses = append(out.Addresses, CADFAddress{URL: a.URL, Name: opt(a.Name)})
		}
		if r.Host != nil {
			out.Host = CADFHost{ID: opt(r.Host.ID), Address: opt(r.Host.Address),
				Agent: opt(r.Host.Agent), Platform: opt(r.Host.Platform)}
		}
		return out
	}
	ev = &CADFEvent{
		TypeURI: opt(v.TypeURI), ID: opt(v.ID), EventTime: opt(v.EventTime), EventType: opt(v.EventType),
		Action: v.Action, Outcome: v.Outcome,
		Initiator: resource(&v.Initiator), Target: resource(&v.Target), Observer: resource(&v.Observer),
		Attachments: attach(v.Attachments), RequestPath: opt(v.RequestPath),
	}
	if v.Reason != nil {
		ev.Reason = CADFReason{ReasonType: opt(v.Reason.ReasonType), ReasonCode: opt(v.Reason.ReasonCode)}
	}
	return ev, empty
}

// cadfWire turns a .wire file into a pattern: <UUID> and <CADF_NOW> stand for a generated
// id and time.
func cadfWire(wire []byte) *regexp.Regexp {
	p := regexp.QuoteMeta(string(wire))
	p = strings.ReplaceAll(p, "<UUID>", `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)
	p = strings.ReplaceAll(p, "<CADF_NOW>", `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00`)
	return regexp.MustCompile("^" + p + "$")
}

func TestSharedCADFVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vectorDir, "cadf_*.cadf"))
	if err != nil || len(files) < 8 {
		t.Fatalf("vectors: %v (%d files)", err, len(files))
	}
	var accepted, rejected int
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".cadf")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v cadfVector
			dec := json.NewDecoder(bytes.NewReader(input))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			ev, empty := cadfOf(&v)
			if empty {
				t.Skip("an optional string is present and empty, which Go sends as absent")
			}
			var col collector
			c, err := NewWithSink(Config{}, col.sink)
			if err != nil {
				t.Fatal(err)
			}
			recErr := c.RecordCADF(ev)
			report := mustClose(t, c)
			base := filepath.Join(vectorDir, name)
			if reason, err := os.ReadFile(base + ".error"); err == nil {
				rejected++
				want, ok := reasons[strings.TrimSpace(string(reason))]
				if !ok {
					t.Fatalf("unknown reason %q", reason)
				}
				if !errors.Is(recErr, want.err) {
					t.Fatalf("got %v, want %v", recErr, want.err)
				}
				if n := want.counter(report.Stats.Rejected); n != 1 || report.Stats.Recorded != 0 {
					t.Fatalf("counted %d times, stats %+v", n, report.Stats)
				}
				return
			}
			wire, err := os.ReadFile(base + ".wire")
			if err != nil {
				t.Fatal(err)
			}
			if recErr != nil {
				t.Fatalf("refused: %v", recErr)
			}
			got := col.got()
			if len(got) != 1 || !cadfWire(wire).Match(got[0]) {
				t.Fatalf("sink got\n%s\nwant\n%s", got, wire)
			}
			accepted++
		})
	}
	if accepted < 3 || rejected < 5 {
		t.Fatalf("ran %d accepted, %d rejecting vectors", accepted, rejected)
	}
}

func keystoneCADF() *CADFEvent {
	ev := minimalCADF()
	ev.Outcome = "failure"
	ev.Reason = CADFReason{ReasonType: "HTTP", ReasonCode: "409"}
	ev.Initiator.Name = "ada"
	ev.Initiator.Addresses = []CADFAddress{{URL: "https://keystone.example.com/v3", Name: "public"}}
	ev.Initiator.Host = CADFHost{Address: "10.0.0.7", Agent: "python-openstackclient/6.0"}
	ev.Initiator.ProjectID = "e9141fb24eee4b3e9f25ae69cda31132"
	ev.Attachments = []CADFAttachment{{Name: "payload", TypeURI: "mime:application/json",
		Content: `{"flavor":"m1.small","count":2}`, ContentIsJSON: true}}
	ev.RequestPath = "/v2.1/servers"
	return ev
}

// raceEnabled is set by race_test.go in -race builds.
var raceEnabled = false

func TestRecordCADFAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c, err := New(Config{QueueCapacity: 100_000, Overflow: OverflowBlock, BlockTimeout: 10 * time.Second, Sink: NullSink()})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, c)
	ev := keystoneCADF()
	for i := 0; i < 1000; i++ { // warm the pool
		_ = c.RecordCADF(ev)
	}
	if n := testing.AllocsPerRun(5000, func() {
		if err := c.RecordCADF(ev); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("RecordCADF: %v allocations per call, want 0", n)
	}
}
