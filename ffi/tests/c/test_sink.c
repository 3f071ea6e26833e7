/* The callback sink's outcomes, and the batch calls. */
#define _GNU_SOURCE
#include "check.h"

/* Retries the first call, answers an unknown code to the second, refuses any batch with a
 * "poison" event, and splits batches of more than 2. */
static uint32_t picky(collector *c, const auditbuf_bytes *events, size_t n) {
    if (c->calls == 1) return AUDITBUF_SINK_RETRY;
    if (c->calls == 2) return 77;
    if (n > 2) return AUDITBUF_SINK_TOO_LARGE;
    for (size_t i = 0; i < n; i++)
        if (memmem(events[i].ptr, events[i].len, "poison", 6)) return AUDITBUF_SINK_REJECTED;
    return AUDITBUF_SINK_DELIVERED;
}

void test_callback_outcomes(void) {
    collector c;
    collector_init(&c);
    c.script = picky;
    auditbuf_pipeline *p = pipeline_to(
        &c, "{\"retry\":{\"backoff_base_ms\":1,\"backoff_cap_ms\":2,\"max_attempts\":10}}");
    char line[64];
    for (int i = 0; i < 7; i++) {
        snprintf(line, sizeof line, "{\"event_type\":\"e\",\"n\":%d%s}", i,
                 i == 3 ? ",\"x\":\"poison\"" : "");
        CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)line, strlen(line)), AUDITBUF_OK);
    }
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_flush(p, 10000, &r), AUDITBUF_OK);
    CHECK(r.completed == 1);
    CHECK_EQ_U64(r.stats.delivered, 6);
    CHECK_EQ_U64(r.stats.dead_lettered, 1);
    CHECK(r.stats.retries >= 2);
    check_invariant(&r.stats);
    CHECK(collector_count(&c) == 6);
    for (size_t i = 0; i < c.n; i++) CHECK(strstr(c.events[i], "poison") == NULL);
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    auditbuf_pipeline_free(p);
    collector_free(&c);
}

void test_batches(void) {
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{}");
    /* Ten JSON events in one buffer, the sixth broken. */
    char buf[512];
    auditbuf_span spans[10];
    size_t at = 0;
    for (int i = 0; i < 10; i++) {
        int n = snprintf(buf + at, sizeof buf - at, i == 5 ? "{\"n\":%d" : "{\"n\":%d}", i);
        spans[i] = (auditbuf_span){(uint32_t)at, (uint32_t)n};
        at += (size_t)n;
    }
    size_t taken = 99;
    CHECK_STATUS(auditbuf_record_json_batch(p, (const uint8_t *)buf, at, spans, 10, &taken),
                 AUDITBUF_INVALID_JSON);
    CHECK(taken == 5);
    CHECK(last_error_has("events[5]: "));
    CHECK_STATUS(auditbuf_record_json_batch(p, (const uint8_t *)buf, at, spans + 6, 4, &taken),
                 AUDITBUF_OK);
    CHECK(taken == 4);
    CHECK_STATUS(auditbuf_record_json_batch(p, NULL, 0, NULL, 0, &taken), AUDITBUF_OK);
    CHECK(taken == 0);
    CHECK_STATUS(auditbuf_record_json_batch(p, (const uint8_t *)buf, at, spans, 10, NULL),
                 AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_record_json_batch(p, (const uint8_t *)buf, at, NULL, 10, &taken),
                 AUDITBUF_NULL_PARAMETER);
    spans[1].len = 1000;
    CHECK_STATUS(auditbuf_record_json_batch(p, (const uint8_t *)buf, at, spans, 10, &taken),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK(taken == 1);
    CHECK(last_error_has("spans[1]"));

    /* Flat events sharing one buffer; the third lacks its correlation id. */
    const char *strings = "a.bgatewayreceivedsuccessrr-";
    auditbuf_flat_event evs[3];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 3; i++) {
        evs[i].version = AUDITBUF_FLAT_VERSION;
        evs[i].present = 1u << AUDITBUF_FIELD_EVENT_TYPE | 1u << AUDITBUF_FIELD_EVENT_CATEGORY |
                         1u << AUDITBUF_FIELD_EVENT_ACTION | 1u << AUDITBUF_FIELD_EVENT_OUTCOME |
                         1u << AUDITBUF_FIELD_CORRELATION_ID | 1u << AUDITBUF_FIELD_DURATION_MS;
        evs[i].duration_ms = (uint64_t)i;
        evs[i].spans[AUDITBUF_FIELD_EVENT_TYPE] = (auditbuf_span){0, 3};
        evs[i].spans[AUDITBUF_FIELD_EVENT_CATEGORY] = (auditbuf_span){3, 7};
        evs[i].spans[AUDITBUF_FIELD_EVENT_ACTION] = (auditbuf_span){10, 8};
        evs[i].spans[AUDITBUF_FIELD_EVENT_OUTCOME] = (auditbuf_span){18, 7};
        evs[i].spans[AUDITBUF_FIELD_CORRELATION_ID] = (auditbuf_span){25, 3};
    }
    evs[2].present &= ~(1u << AUDITBUF_FIELD_CORRELATION_ID);
    size_t len = strlen(strings);
    CHECK_STATUS(auditbuf_record_flat_batch(p, evs, 3, (const uint8_t *)strings, len, &taken),
                 AUDITBUF_MISSING_FIELD);
    CHECK(taken == 2);
    CHECK(last_error_has("events[2]: "));
    evs[2].spans[AUDITBUF_FIELD_EVENT_TYPE].len = 100;
    CHECK_STATUS(auditbuf_record_flat_batch(p, evs + 2, 1, (const uint8_t *)strings, len, &taken),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("events[0].spans[1] (event_type)"));

    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    CHECK_EQ_U64(r.stats.delivered, 5 + 4 + 1 + 2);
    CHECK_EQ_U64(r.stats.rejected_invalid_json, 1);
    CHECK_EQ_U64(r.stats.rejected_missing_field, 1);
    check_invariant(&r.stats);
    CHECK(collector_count(&c) == 12);
    CHECK(strstr(c.events[10], "\"event_type\":\"a.b\"") != NULL);
    CHECK(strstr(c.events[11], "\"correlation_id\":\"rr-\",\"duration_ms\":1") != NULL);
    auditbuf_pipeline_free(p);
    collector_free(&c);
}
