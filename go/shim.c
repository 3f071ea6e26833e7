/* The wrappers declared in shim.h, and the trampoline from the ABI's sink callback into
 * Go (exported by cgo.go as abgoSink). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"
#include "_cgo_export.h"

/* This thread's last error, in memory the caller frees; NULL if malloc fails. */
static char *last_error(void) {
    size_t n = auditbuf_last_error(NULL, 0);
    char *m = malloc(n + 1);
    if (m != NULL) auditbuf_last_error(m, n + 1);
    return m;
}

static uint32_t keep(uint32_t status, char **msg) {
    if (status != AUDITBUF_OK) *msg = last_error();
    return status;
}

/* The handle of the Go sink running on this thread (a flush thread), 0 elsewhere: a Go
 * call made from inside the sink finds its client's here (a goroutine running a cgo
 * callback stays on the callback's thread). */
static __thread uintptr_t in_sink;

static uint32_t sink(void *user, const auditbuf_bytes *events, size_t n) {
    uintptr_t outer = in_sink;
    in_sink = (uintptr_t)user;
    uint32_t outcome = abgoSink((uintptr_t)user, (auditbuf_bytes *)events, n);
    in_sink = outer;
    return outcome;
}

int abgo_in_sink(uintptr_t handle) { return handle != 0 && in_sink == handle; }

uint32_t abgo_new(const char *config, size_t len, auditbuf_pipeline **out, char **msg) {
    return keep(auditbuf_pipeline_new(config, len, out), msg);
}

uint32_t abgo_new_callback(const char *config, size_t len, uintptr_t handle,
                           auditbuf_pipeline **out, char **msg) {
    return keep(auditbuf_pipeline_new_callback(config, len, sink, (void *)handle, out), msg);
}

uint32_t abgo_config_check_env(const char *prefix, size_t prefix_len, const char *config,
                               size_t config_len, const char *store, size_t store_len,
                               char **msg) {
    return keep(auditbuf_config_check_env(prefix, prefix_len, config, config_len, store,
                                          store_len),
                msg);
}

uint32_t abgo_record_json(const auditbuf_pipeline *p, const uint8_t *json, size_t len,
                          char **msg) {
    return keep(auditbuf_record_json(p, json, len), msg);
}

uint32_t abgo_record_json_batch(const auditbuf_pipeline *p, const uint8_t *buf, size_t len,
                                const auditbuf_span *spans, size_t n, size_t *taken,
                                char **msg) {
    return keep(auditbuf_record_json_batch(p, buf, len, spans, n, taken), msg);
}

uint32_t abgo_record_flat(const auditbuf_pipeline *p, const auditbuf_flat_event *ev,
                          const uint8_t *buf, size_t len, char **msg) {
    return keep(auditbuf_record_flat(p, ev, buf, len), msg);
}

uint32_t abgo_record_flat_batch(const auditbuf_pipeline *p, const auditbuf_flat_event *evs,
                                size_t n, const uint8_t *buf, size_t len, size_t *taken,
                                char **msg) {
    return keep(auditbuf_record_flat_batch(p, evs, n, buf, len, taken), msg);
}

/* The views of a flat CADF event: spans into `buf`; `bad` is set by one out of range. */
typedef struct cadf_views {
    const uint8_t *buf;
    size_t len;
    int bad;
} cadf_views;

static auditbuf_bytes view(cadf_views *v, auditbuf_span s) {
    auditbuf_bytes b = {NULL, 0};
    if (s.len == 0) return b;
    if ((uint64_t)s.offset + s.len > v->len) {
        v->bad = 1;
        return b;
    }
    b.ptr = v->buf + s.offset;
    b.len = s.len;
    return b;
}

/* Elements [first, first + n) of a list of `total`, or NULL when n is 0. */
static const void *slice(cadf_views *v, const void *base, size_t size, uint32_t first, uint32_t n,
                         size_t total) {
    if (n == 0) return NULL;
    if ((uint64_t)first + n > total) {
        v->bad = 1;
        return NULL;
    }
    return (const uint8_t *)base + (size_t)first * size;
}

static auditbuf_cadf_resource cadf_resource(cadf_views *v, const abgo_cadf_resource *r,
                                            const auditbuf_cadf_address *addresses,
                                            size_t n_addresses,
                                            const auditbuf_cadf_attachment *attachments,
                                            size_t n_attachments) {
    auditbuf_cadf_resource out;
    memset(&out, 0, sizeof out);
    out.type_uri = view(v, r->type_uri);
    out.name = view(v, r->name);
    out.domain = view(v, r->domain);
    out.id = view(v, r->id);
    out.addresses = slice(v, addresses, sizeof *addresses, r->addresses_first, r->addresses_n,
                          n_addresses);
    out.addresses_len = out.addresses != NULL ? r->addresses_n : 0;
    out.host_id = view(v, r->host_id);
    out.host_address = view(v, r->host_address);
    out.host_agent = view(v, r->host_agent);
    out.host_platform = view(v, r->host_platform);
    out.attachments = slice(v, attachments, sizeof *attachments, r->attachments_first,
                            r->attachments_n, n_attachments);
    out.attachments_len = out.attachments != NULL ? r->attachments_n : 0;
    out.project_id = view(v, r->project_id);
    out.domain_id = view(v, r->domain_id);
    out.project_name = view(v, r->project_name);
    out.project_domain_name = view(v, r->project_domain_name);
    out.domain_name = view(v, r->domain_name);
    out.app_credential_id = view(v, r->app_credential_id);
    return out;
}

/* A message for Go to free (NULL if malloc fails: the status still says what happened). */
static char *own(const char *text) {
    size_t n = strlen(text) + 1;
    char *m = malloc(n);
    if (m != NULL) memcpy(m, text, n);
    return m;
}

/* Builds the event of views in the converted lists `addr` and `att` and records it. */
static uint32_t record_cadf(const auditbuf_pipeline *p, const abgo_cadf_event *ev,
                            const abgo_cadf_address *addresses, size_t n_addresses,
                            const abgo_cadf_attachment *attachments, size_t n_attachments,
                            auditbuf_cadf_address *addr, auditbuf_cadf_attachment *att,
                            const uint8_t *buf, size_t len, char **msg) {
    cadf_views v = {buf, len, 0};
    for (size_t i = 0; i < n_addresses; i++) {
        addr[i].url = view(&v, addresses[i].url);
        addr[i].name = view(&v, addresses[i].name);
    }
    for (size_t i = 0; i < n_attachments; i++) {
        memset(&att[i], 0, sizeof att[i]);
        att[i].name = view(&v, attachments[i].name);
        att[i].type_uri = view(&v, attachments[i].type_uri);
        att[i].content = view(&v, attachments[i].content);
        att[i].content_is_json = attachments[i].content_is_json != 0;
    }
    auditbuf_cadf_event e;
    memset(&e, 0, sizeof e);
    e.type_uri = view(&v, ev->type_uri);
    e.id = view(&v, ev->id);
    e.event_time = view(&v, ev->event_time);
    e.event_type = view(&v, ev->event_type);
    e.action = view(&v, ev->action);
    e.outcome = view(&v, ev->outcome);
    e.reason_type = view(&v, ev->reason_type);
    e.reason_code = view(&v, ev->reason_code);
    e.initiator = cadf_resource(&v, &ev->initiator, addr, n_addresses, att, n_attachments);
    e.target = cadf_resource(&v, &ev->target, addr, n_addresses, att, n_attachments);
    e.observer = cadf_resource(&v, &ev->observer, addr, n_addresses, att, n_attachments);
    e.attachments = slice(&v, att, sizeof *att, ev->attachments_first, ev->attachments_n,
                          n_attachments);
    e.attachments_len = e.attachments != NULL ? ev->attachments_n : 0;
    e.request_path = view(&v, ev->request_path);
    if (v.bad) {
        *msg = own("abgo_record_cadf: a span or list is out of range");
        return AUDITBUF_INVALID_PARAMETER;
    }
    return keep(auditbuf_record_cadf(p, &e), msg);
}

uint32_t abgo_record_cadf(const auditbuf_pipeline *p, const abgo_cadf_event *ev,
                          const abgo_cadf_address *addresses, size_t n_addresses,
                          const abgo_cadf_attachment *attachments, size_t n_attachments,
                          const uint8_t *buf, size_t len, char **msg) {
    if (ev == NULL || (addresses == NULL && n_addresses > 0) ||
        (attachments == NULL && n_attachments > 0)) {
        *msg = own("abgo_record_cadf: NULL event or list");
        return AUDITBUF_NULL_PARAMETER;
    }
    auditbuf_cadf_address address_stack[ABGO_CADF_STACK];
    auditbuf_cadf_attachment attachment_stack[ABGO_CADF_STACK];
    auditbuf_cadf_address *addr = address_stack;
    auditbuf_cadf_attachment *att = attachment_stack;
    if (n_addresses > ABGO_CADF_STACK) addr = malloc(n_addresses * sizeof *addr);
    if (n_attachments > ABGO_CADF_STACK) att = malloc(n_attachments * sizeof *att);
    uint32_t status;
    if (addr == NULL || att == NULL) {
        *msg = own("abgo_record_cadf: out of memory for the event's lists");
        status = AUDITBUF_INVALID_PARAMETER;
    } else {
        status = record_cadf(p, ev, addresses, n_addresses, attachments, n_attachments, addr, att,
                             buf, len, msg);
    }
    if (addr != address_stack) free(addr);
    if (att != attachment_stack) free(att);
    return status;
}

uint32_t abgo_flush(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg) {
    return keep(auditbuf_flush(p, timeout_ms, report), msg);
}

uint32_t abgo_close(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg) {
    return keep(auditbuf_close(p, timeout_ms, report), msg);
}

uint32_t abgo_fork_probe(const auditbuf_pipeline *p) {
    int fds[2];
    if (pipe(fds) != 0) return UINT32_MAX;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return UINT32_MAX;
    }
    if (pid == 0) {
        static const uint8_t event[] = "{\"event_type\":\"child\"}";
        uint32_t status = auditbuf_record_json(p, event, sizeof event - 1);
        ssize_t w = write(fds[1], &status, sizeof status);
        _exit(w == (ssize_t)sizeof status ? 0 : 1);
    }
    close(fds[1]);
    uint32_t status = UINT32_MAX;
    if (read(fds[0], &status, sizeof status) != (ssize_t)sizeof status) status = UINT32_MAX;
    close(fds[0]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    return status;
}
