package auditbuf

import (
	"math"
	"sync"
)

// CADFEvent is a CADF event (DMTF Cloud Auditing Data Federation) as sapcc audittools
// publishes it to RabbitMQ for Hermes: the core's CadfEvent. RecordCADF reads it during
// the call only. Each field's doc gives its wire name; fields are sent in this order,
// absent ones left out. An empty string is an absent field, an empty list or a zero
// CADFReason or CADFHost is not sent.
//
// Required: Action, Outcome ("success", "failure", "pending" or "unknown"), and the
// TypeURI and ID of Initiator, Target and Observer (empty is ErrMissingField). Left out,
// TypeURI is "http://schemas.dmtf.org/cloud/audit/1.0/event", ID a new random UUID
// (version 4), EventTime the time of the call as audittools writes it
// ("2026-11-30T10:15:30.123456+00:00") and EventType "activity".
type CADFEvent struct {
	// TypeURI is "typeURI"; "" sends the CADF event schema.
	TypeURI string
	// ID is "id", at most 255 bytes (it is the AMQP message id, by which consumers
	// de-duplicate); "" sends a new random UUID v4.
	ID string
	// EventTime is "eventTime", RFC 3339; "" sends the time of the call, with
	// microseconds.
	EventTime string
	// EventType is "eventType": "activity", "monitor" or "control"; "" sends "activity".
	EventType string
	// Action is "action", e.g. "create" or "read/list"; required.
	Action string
	// Outcome is "outcome": "success", "failure", "pending" or "unknown"; required.
	Outcome string
	// Reason is "reason", e.g. the HTTP status; sent when either member is set.
	Reason CADFReason
	// Initiator is "initiator": who did it; required.
	Initiator CADFResource
	// Target is "target": what it was done to; required.
	Target CADFResource
	// Observer is "observer": who reports it (the service); required.
	Observer CADFResource
	// Attachments is "attachments".
	Attachments []CADFAttachment
	// RequestPath is "requestPath", the API path of the request.
	RequestPath string
}

// CADFReason is the "reason" of a CADFEvent; empty members are left out.
type CADFReason struct {
	// ReasonType is "reasonType", e.g. "HTTP".
	ReasonType string
	// ReasonCode is "reasonCode", e.g. "201".
	ReasonCode string
}

// CADFResource is a CADF resource: the initiator, target or observer of a CADFEvent.
// TypeURI and ID are required; empty strings and lists are left out.
type CADFResource struct {
	// TypeURI is "typeURI", e.g. "service/security/account/user"; required.
	TypeURI string
	// Name is "name".
	Name string
	// Domain is "domain".
	Domain string
	// ID is "id"; required.
	ID string
	// Addresses is "addresses".
	Addresses []CADFAddress
	// Host is "host"; sent when any member is set.
	Host CADFHost
	// Attachments is "attachments".
	Attachments []CADFAttachment
	// ProjectID is "project_id" (OpenStack).
	ProjectID string
	// DomainID is "domain_id" (OpenStack).
	DomainID string
	// ProjectName is "project_name" (Hermes; for initiators, the token's scope).
	ProjectName string
	// ProjectDomainName is "project_domain_name" (Hermes).
	ProjectDomainName string
	// DomainName is "domain_name" (Hermes).
	DomainName string
	// AppCredentialID is "app_credential_id" (Keystone application credentials).
	AppCredentialID string
}

// CADFAddress is one of a CADFResource's "addresses".
type CADFAddress struct {
	// URL is "url"; required.
	URL string
	// Name is "name".
	Name string
}

// CADFHost is a CADFResource's "host"; empty members are left out.
type CADFHost struct {
	// ID is "id".
	ID string
	// Address is "address".
	Address string
	// Agent is "agent".
	Agent string
	// Platform is "platform".
	Platform string
}

// CADFAttachment is one of the "attachments" of a CADFEvent or CADFResource.
type CADFAttachment struct {
	// Name is "name".
	Name string
	// TypeURI is "typeURI", the content's type; required.
	TypeURI string
	// Content is "content": text, sent as a JSON string (what Hermes' Go type reads),
	// or, with ContentIsJSON, the JSON text of any value, checked like a RecordJSON event
	// (ErrInvalidJSON) and sent as written (line breaks between tokens become spaces).
	Content string
	// ContentIsJSON says Content is JSON text (the core's CadfContent::Json) rather than
	// text (CadfContent::Text).
	ContentIsJSON bool
}

// RecordCADF records a CADF event, for the RabbitMQ sink (SinkRabbitMQ) or any other. It
// is checked and encoded on the calling goroutine, like Record, and returns nil when the
// event was accepted, the ErrNotDurable warning when it was accepted but its "wal" sync
// failed (see Accepted), and otherwise an error wrapping the reason, whose message names
// the field (e.g. "outcome", "initiator.id"): ErrMissingField (an empty required field),
// ErrInvalidField (a string that is not UTF-8 or holds U+0000, an Outcome or EventType
// outside its set, an EventTime that is not RFC 3339, an ID over 255 bytes),
// ErrInvalidJSON (an attachment's JSON content), ErrTooLarge, ErrFull, ErrTimeout,
// ErrClosed, ErrStoreFull, ErrStore, ErrForked. Refusals are counted in Stats.Rejected.
// A nil ev is ErrNullParameter; ev is read during the call only. Allocation-free once warm.
func (c *Client) RecordCADF(ev *CADFEvent) error {
	if ev == nil {
		return errNilEvent
	}
	if !c.enter() {
		return c.refused()
	}
	e := cadfEncoders.Get().(*cadfEncoder)
	ok := e.encode(ev)
	var status uint32
	var msg string
	if ok {
		status, msg = c.n.recordCADF(&e.ev, e.addresses, e.attachments, e.buf)
	}
	c.leave()
	e.release()
	if !ok {
		return errHuge
	}
	return errorOf(status, msg)
}

// The flat form of a CADF event passed to abgo_record_cadf (go/shim.h): integers only,
// so Go memory holding it may be passed to C. A span of length 0 is an absent field;
// lists are index ranges into the encoder's address and attachment arrays. cgo.go checks
// the sizes against the C types.

type cadfFlatResource struct {
	typeURI, name, domain, id                      flatSpan
	hostID, hostAddress, hostAgent, hostPlatform   flatSpan
	projectID, domainID, projectName               flatSpan
	projectDomainName, domainName, appCredentialID flatSpan
	addressesFirst, addressesN                     uint32
	attachmentsFirst, attachmentsN                 uint32
}

type cadfFlatAddress struct {
	url, name flatSpan
}

type cadfFlatAttachment struct {
	name, typeURI, content flatSpan
	contentIsJSON          uint32
}

type cadfFlatEvent struct {
	typeURI, id, eventTime, eventType, action, outcome flatSpan
	reasonType, reasonCode, requestPath                flatSpan
	initiator, target, observer                        cadfFlatResource
	attachmentsFirst, attachmentsN                     uint32
}

// cadfEncoder holds the buffers of one RecordCADF call; pooled.
type cadfEncoder struct {
	buf         []byte
	ev          cadfFlatEvent
	addresses   []cadfFlatAddress
	attachments []cadfFlatAttachment
}

var cadfEncoders = sync.Pool{New: func() any { return &cadfEncoder{buf: make([]byte, 0, 2048)} }}

// release returns e to the pool unless it grew past what the pool keeps.
func (e *cadfEncoder) release() {
	if cap(e.buf) > retainBytes || cap(e.addresses) > 1024 || cap(e.attachments) > 1024 {
		return
	}
	cadfEncoders.Put(e)
}

func (e *cadfEncoder) str(s string) flatSpan {
	if s == "" {
		return flatSpan{}
	}
	sp := flatSpan{offset: uint32(len(e.buf)), len: uint32(len(s))}
	e.buf = append(e.buf, s...)
	return sp
}

// encode writes ev into e, and reports whether its offsets and counts fit in 32 bits.
func (e *cadfEncoder) encode(ev *CADFEvent) bool {
	e.buf = e.buf[:0]
	e.addresses = e.addresses[:0]
	e.attachments = e.attachments[:0]
	// Field by field, not a composite literal: that would be built aside and copied.
	f := &e.ev
	f.typeURI = e.str(ev.TypeURI)
	f.id = e.str(ev.ID)
	f.eventTime = e.str(ev.EventTime)
	f.eventType = e.str(ev.EventType)
	f.action = e.str(ev.Action)
	f.outcome = e.str(ev.Outcome)
	f.reasonType = e.str(ev.Reason.ReasonType)
	f.reasonCode = e.str(ev.Reason.ReasonCode)
	f.requestPath = e.str(ev.RequestPath)
	e.resource(&f.initiator, &ev.Initiator)
	e.resource(&f.target, &ev.Target)
	e.resource(&f.observer, &ev.Observer)
	f.attachmentsFirst, f.attachmentsN = e.attach(ev.Attachments)
	return uint64(len(e.buf)) <= math.MaxUint32 &&
		uint64(len(e.addresses)) <= math.MaxUint32 && uint64(len(e.attachments)) <= math.MaxUint32
}

func (e *cadfEncoder) resource(f *cadfFlatResource, r *CADFResource) {
	f.typeURI = e.str(r.TypeURI)
	f.name = e.str(r.Name)
	f.domain = e.str(r.Domain)
	f.id = e.str(r.ID)
	f.hostID = e.str(r.Host.ID)
	f.hostAddress = e.str(r.Host.Address)
	f.hostAgent = e.str(r.Host.Agent)
	f.hostPlatform = e.str(r.Host.Platform)
	f.projectID = e.str(r.ProjectID)
	f.domainID = e.str(r.DomainID)
	f.projectName = e.str(r.ProjectName)
	f.projectDomainName = e.str(r.ProjectDomainName)
	f.domainName = e.str(r.DomainName)
	f.appCredentialID = e.str(r.AppCredentialID)
	f.addressesFirst = uint32(len(e.addresses))
	f.addressesN = uint32(len(r.Addresses))
	for i := range r.Addresses {
		a := &r.Addresses[i]
		e.addresses = append(e.addresses, cadfFlatAddress{url: e.str(a.URL), name: e.str(a.Name)})
	}
	f.attachmentsFirst, f.attachmentsN = e.attach(r.Attachments)
}

// attach appends list to e's attachments and returns where it starts and its length.
func (e *cadfEncoder) attach(list []CADFAttachment) (first, n uint32) {
	first = uint32(len(e.attachments))
	for i := range list {
		a := &list[i]
		flat := cadfFlatAttachment{name: e.str(a.Name), typeURI: e.str(a.TypeURI), content: e.str(a.Content)}
		if a.ContentIsJSON {
			flat.contentIsJSON = 1
		}
		e.attachments = append(e.attachments, flat)
	}
	return first, uint32(len(list))
}
