/* The wrappers declared in shim.h, and the trampoline from the ABI's sink callback into
 * Go (exported by cgo.go as abgoSink). */
#include <errno.h>
#include <stdlib.h>
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

static uint32_t sink(void *user, const auditbuf_bytes *events, size_t n) {
    return abgoSink((uintptr_t)user, (auditbuf_bytes *)events, n);
}

uint32_t abgo_new(const char *config, size_t len, auditbuf_pipeline **out, char **msg) {
    return keep(auditbuf_pipeline_new(config, len, out), msg);
}

uint32_t abgo_new_callback(const char *config, size_t len, uintptr_t handle,
                           auditbuf_pipeline **out, char **msg) {
    return keep(auditbuf_pipeline_new_callback(config, len, sink, (void *)handle, out), msg);
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
