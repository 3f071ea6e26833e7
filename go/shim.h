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
uint32_t abgo_new_callback(const char *config, size_t len, uintptr_t handle,
                           auditbuf_pipeline **out, char **msg);
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
uint32_t abgo_flush(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg);
uint32_t abgo_close(const auditbuf_pipeline *p, uint64_t timeout_ms, auditbuf_report *report,
                    char **msg);

/* Tests only: forks; the child records one event on `p`, reports the status through a
 * pipe and exits at once (_exit, touching nothing of Go's). Returns that status, or
 * UINT32_MAX if fork or the pipe failed. */
uint32_t abgo_fork_probe(const auditbuf_pipeline *p);

#endif
