/* Records two audit events through a callback sink that prints them, then closes.
 * Build and run: see the "C" section of the README (or `make -C examples/c run`). */
#include <stdio.h>
#include <string.h>

#include "auditbuf.h"

/* The sink: called on the flush thread with each batch. Use a "datastorage" or "http" sink
 * in the configuration instead to send events to a collector. */
static uint32_t print_batch(void *user, const auditbuf_bytes *events, size_t n) {
    (void)user;
    for (size_t i = 0; i < n; i++) printf("sent: %.*s\n", (int)events[i].len, (const char *)events[i].ptr);
    return AUDITBUF_SINK_DELIVERED;
}

static auditbuf_bytes str(const char *s) {
    auditbuf_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static int fail(const char *what, auditbuf_status status) {
    char message[256];
    auditbuf_last_error(message, sizeof message);
    fprintf(stderr, "%s: %s: %s\n", what, auditbuf_status_name(status), message);
    return 1;
}

int main(void) {
    const char *config = "{\"service\":\"gateway\",\"queue_capacity\":10000}";
    auditbuf_pipeline *pipeline = NULL;
    auditbuf_status status =
        auditbuf_pipeline_new_callback(config, strlen(config), print_batch, NULL, &pipeline);
    if (status != AUDITBUF_OK) return fail("auditbuf_pipeline_new_callback", status);

    /* A typed event: string views, absent fields left zero. */
    auditbuf_event event = {0};
    event.event_type = str("gateway.signal.received");
    event.event_category = str("gateway");
    event.event_action = str("received");
    event.event_outcome = str("success");
    event.correlation_id = str("rr-2026-001");
    event.actor_type = str("service");
    event.actor_id = str("gateway");
    event.event_data = str("{\"signal_type\":\"alert\",\"signal_name\":\"HighMemoryUsage\"}");
    event.event_timestamp = str("2026-11-30T10:00:00.000Z");
    status = auditbuf_record_event(pipeline, &event);
    if (status != AUDITBUF_OK) return fail("auditbuf_record_event", status);

    /* Raw JSON: one object. Bad input is refused with its own status, and counted. */
    const char *json = "{\"event_type\":\"user.login\",\"user\":\"ada\"}";
    status = auditbuf_record_json(pipeline, (const uint8_t *)json, strlen(json));
    if (status != AUDITBUF_OK) return fail("auditbuf_record_json", status);
    status = auditbuf_record_json(pipeline, (const uint8_t *)"[1, 2]", 6);
    printf("refused: %s\n", auditbuf_status_name(status));

    /* Shut down: send what is left within 5 s and say what happened. */
    auditbuf_report report = {0};
    report.size = sizeof report;
    status = auditbuf_close(pipeline, 5000, &report);
    auditbuf_pipeline_free(pipeline);
    if (status != AUDITBUF_OK) return fail("auditbuf_close", status);
    printf("delivered %llu, rejected %llu, left %llu\n",
           (unsigned long long)report.stats.delivered,
           (unsigned long long)report.stats.rejected_not_an_object,
           (unsigned long long)report.left);
    return report.stats.delivered == 2 ? 0 : 1;
}
