package auditbuf

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// isZero reports whether no field of the sink is set.
func (s Sink) isZero() bool {
	return s.Type == "" && s.URL == "" && s.Format == "" && len(s.Headers) == 0 &&
		s.BearerToken == "" && s.TokenFile == "" && s.Queue == "" && s.Exchange == "" &&
		s.RoutingKey == "" && !s.NoDeclare && s.ConnectTimeout == 0 && s.Timeout == 0 &&
		s.CAFile == ""
}

// rabbitMQFromEnv reads the RabbitMQ sink from ${prefix}_RABBITMQ_* with the rules of the
// core's RabbitMqConfig::from_vars (core/src/sink/rabbitmq/config.rs), error for error:
// nil when none of the variables is set.
func rabbitMQFromEnv(prefix string, lookup func(string) (string, bool)) (*Sink, error) {
	name := func(suffix string) string { return prefix + "_RABBITMQ_" + suffix }
	var err error
	get := func(suffix string) *string {
		v, ok := lookup(name(suffix))
		if !ok {
			return nil
		}
		if !utf8.ValidString(v) && err == nil {
			err = configError("%s: is not valid UTF-8", name(suffix))
		}
		return &v
	}
	url, queue, queueName := get("URL"), get("QUEUE"), get("QUEUE_NAME")
	partNames := [4]string{"HOSTNAME", "PORT", "USERNAME", "PASSWORD"}
	var parts [4]*string
	for i, p := range partNames {
		parts[i] = get(p)
	}
	if err != nil {
		return nil, err
	}
	anyPart := -1
	for i := range parts {
		if parts[i] != nil {
			anyPart = i
			break
		}
	}
	if url == nil && queue == nil && queueName == nil && anyPart < 0 {
		return nil, nil
	}
	var q string
	switch {
	case queue != nil && queueName != nil:
		return nil, configError("%s: set %s or this, not both", name("QUEUE_NAME"), name("QUEUE"))
	case queue != nil:
		q = *queue
	case queueName != nil:
		q = *queueName
	default:
		return nil, configError("%s: missing: the queue to publish to", name("QUEUE"))
	}
	var u string
	if url != nil {
		if anyPart >= 0 {
			return nil, configError("%s: set %s or the URL's parts, not both",
				name(partNames[anyPart]), name("URL"))
		}
		u = *url
	} else {
		or := func(p *string, def string) string {
			if p == nil {
				return def
			}
			return *p
		}
		host, port := or(parts[0], "localhost"), or(parts[1], "5672")
		if !isPort(port) {
			return nil, configError("%s: must be a port number", name("PORT"))
		}
		if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			host = "[" + host + "]"
		}
		u = fmt.Sprintf("amqp://%s:%s@%s:%s/%%2f", percentEncode(or(parts[2], "guest")),
			percentEncode(or(parts[3], "guest")), host, port)
	}
	if field, reason := checkRabbitMQ(u, q); field != "" {
		return nil, configError("%s: %s", name(strings.ToUpper(field)), reason)
	}
	s := RabbitMQSink(u, q)
	return &s, nil
}

// checkRabbitMQ is what the core's RabbitMqConfig::validate checks of a sink read from the
// environment (no exchange, no routing key, default timeouts): the failing field and why,
// or "".
func checkRabbitMQ(url, queue string) (field, reason string) {
	if url == "" {
		return "url", "is empty, must be an amqp:// or amqps:// URL"
	}
	rest, ok := strings.CutPrefix(url, "amqp://")
	if !ok {
		rest, ok = strings.CutPrefix(url, "amqps://")
	}
	if !ok {
		return "url", redactURL(url) + ": must start with amqp:// or amqps://"
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	host := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		host = authority[i+1:]
	}
	if host == "" || strings.HasPrefix(host, ":") {
		return "url", redactURL(url) + ": names no host"
	}
	if queue == "" {
		return "queue", "must not be empty (or set an exchange and a routing key)"
	}
	if len(queue) > 255 {
		return "queue", "must be at most 255 bytes"
	}
	return "", ""
}

// isPort reports whether s parses as a u16 the way Rust's str::parse does (an optional
// leading '+', then decimal digits).
func isPort(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return false
		}
	}
	return true
}

// percentEncode encodes what may not appear as such in a URL's user information: every
// byte but ASCII letters, digits and "-._~".
func percentEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// redactURL is url with the password of its user information replaced by "***" (the
// core's redact).
func redactURL(url string) string {
	i := strings.Index(url, "://")
	if i < 0 {
		// Not a URL: it may be anything, even a bare password. Show its shape only.
		return "(not an amqp:// URL)"
	}
	schemeEnd := i + 3
	rest := url[schemeEnd:]
	authority := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		authority = rest[:j]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return url
	}
	user := authority[:at]
	colon := strings.IndexByte(user, ':')
	if colon < 0 {
		return url
	}
	return url[:schemeEnd] + user[:colon] + ":***" + url[schemeEnd+at:]
}
