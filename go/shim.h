/* Small C wrappers the Go package calls instead of the ABI directly (declarations only:
 * cgo.go includes this file in a preamble that exports Go functions).
 *
 * Why wrappers: auditbuf_last_error is per thread, and a goroutine may run on another
 * thread after any cgo call returns. Each wrapper makes the ABI call and, when it did not
 * return AUDITBUF_OK, copies the message in the same call, on the same thread, into
 * malloc'd memory (*msg) that Go frees. Successful calls pay for one extra pointer. */
#ifndef AUDITBUF_GO_SHIM_H
#define AUDITBUF_GO_SHIM_H

#include <stdint.h>
#include <stddef.h>

#include "auditbuf.h"

uint32_t abgo_new(const char *config, size_t len, auditbuf_pipeline **out, char **msg);
/* Whether the calling thread is running the Go sink of `handle` (the client's own flush
 * thread, inside its callback). */
int abgo_in_sink(uintptr_t handle);
uint32_t abgo_new_callback(const char *config, size_t len, uintptr_t handle,
                           auditbuf_pipeline **out, char **msg);
/* auditbuf_config_check_env; a NULL value is an unset variable. */
uint32_t abgo_config_check_env(const char *prefix, size_t prefix_len, const char *config,
                               size_t config_len, const char *store, size_t store_len,
                               char **msg);
uint32_t abgo_record_json(const auditbuf_pipeline *p, const uint8_t *json, size_t len,
                          char **msg);
uint32_t abgo_record_json_batch(const auditbuf_pipeline *p, const uint8_t *buf, size_t len,
                                const auditbuf_span *spans, size_t n, size_t *taken,
                                char **msg);
uint32_t abgo_record_flat(const auditbuf_pipeline *p, const auditbuf_flat_event *ev,
                          const uint8_t *buf, size_t len, char **msg);
uint32_t abgo_record_flat_batch(const auditbuf_pipeline *p, const auditbuf_flat_event *evs,
                                size_t n, const uint8_t *buf, size_t len, size_t *taken,
                                char **msg);
/* A CADF event in flat form, for cgo: integers only, its strings in one byte buffer and
 * its lists in two arrays passed beside it (Go memory that holds no Go pointers). A span
 * of length 0 is an absent field (a NULL view); a list is `n` elements from index `first`.
 * abgo_record_cadf builds the auditbuf_cadf_event of views from them on the C side. */
/* List elements (addresses and attachments, each) converted on the C stack. */
#define ABGO_CADF_STACK 16

typedef struct abgo_cadf_resource {
    auditbuf_span type_uri, name, domain, id;
    auditbuf_span host_id, host_address, host_agent, host_platform;
    auditbuf_span project_id, domain_id, project_name, project_domain_name, domain_name,
        app_credential_id;
    uint32_t addresses_first, addresses_n, attachments_first, attachments_n;
} abgo_cadf_resource;

typedef struct abgo_cadf_address {
    auditbuf_span url, name;
} abgo_cadf_address;

typedef struct abgo_cadf_attachment {
    auditbuf_span name, type_uri, content;
    uint32_t content_is_json;
} abgo_cadf_attachment;

typedef struct abgo_cadf_event {
    auditbuf_span type_uri, id, event_time, event_type, action, outcome, reason_type,
        reason_code, request_path;
    abgo_cadf_resource initiator, target, observer;
    uint32_t attachments_first, attachments_n;
} abgo_cadf_event;

/* Records `ev` through auditbuf_record_cadf. A span or list out of range is
 * AUDITBUF_INVALID_PARAMETER (a bug in the Go side); lists of more than ABGO_CADF_STACK
 * elements in all take one malloc. */
uint32_t abgo_record_cadf(const auditbuf_pipeline *p, const abgo_cadf_event *ev,
                          const abgo_cadf_address *addresses, size_t n_addresses,
                          const abgo_cadf_attachment *attachments, size_t n_attachments,
                          const uint8_t *buf, size_t len, char **msg);

uint32_t abgo_flush(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg);
uint32_t abgo_close(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg);

/* Tests only: forks; the child records one event on `p`, reports the status through a
 * pipe and exits at once (_exit, touching nothing of Go's). Returns that status, or
 * UINT32_MAX if fork or the pipe failed. */
uint32_t abgo_fork_probe(const auditbuf_pipeline *p);

#endif
