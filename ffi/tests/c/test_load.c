/* A real receiver on 127.0.0.1 (AUDITBUF_TEST_URL), many threads at once, and close while
 * threads record. */
#define _GNU_SOURCE
#include <stdatomic.h>

#include "check.h"

/* Events this program delivered to the receiver; main prints it for the harness. */
uint64_t http_delivered = 0;

static auditbuf_pipeline *to_receiver(const char *extra) {
    const char *url = getenv("AUDITBUF_TEST_URL");
    char doc[1024];
    if (url) {
        snprintf(doc, sizeof doc,
                 "{\"service\":\"c-tests\",\"flush_interval_ms\":20,%s"
                 "\"sink\":{\"type\":\"datastorage\",\"url\":\"%s\",\"timeout_ms\":10000}}",
                 extra, url);
    } else {
        snprintf(doc, sizeof doc, "{%s\"sink\":{\"type\":\"null\"}}", extra);
    }
    return pipeline_from(doc);
}

void test_http(void) {
    if (!getenv("AUDITBUF_TEST_URL")) printf("http: AUDITBUF_TEST_URL unset, null sink\n");
    auditbuf_pipeline *p = to_receiver("");
    int n = (int)(300 * test_scale());
    char id[32], line[128];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "http-%d", i);
        auditbuf_event ev = sample_event(id);
        if (i % 2) {
            CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_OK);
        } else {
            snprintf(line, sizeof line,
                     "{\"event_type\":\"c.json\",\"event_category\":\"gateway\","
                     "\"correlation_id\":\"%s\"}",
                     id);
            CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)line, strlen(line)),
                         AUDITBUF_OK);
        }
    }
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_flush(p, 30000, &r), AUDITBUF_OK);
    CHECK(r.completed == 1);
    CHECK_EQ_U64(r.stats.delivered, (uint64_t)n);
    CHECK_EQ_U64(r.left, 0);
    check_invariant(&r.stats);
    CHECK_STATUS(auditbuf_close(p, 10000, &r), AUDITBUF_OK);
    CHECK_EQ_U64(r.stats.delivered, (uint64_t)n);
    CHECK_EQ_U64(r.stats.failed + r.stats.dead_lettered + r.stats.dropped_shutdown, 0);
    auditbuf_pipeline_free(p);
    if (getenv("AUDITBUF_TEST_URL")) http_delivered += (uint64_t)n;
}

typedef struct worker {
    auditbuf_pipeline *p;
    int id, n;
    uint64_t accepted, closed;
    int until_closed;
} worker;

static void *record_many(void *arg) {
    worker *w = arg;
    char id[48], line[160], buf[256];
    for (int i = 0; w->until_closed || i < w->n; i++) {
        snprintf(id, sizeof id, "t%d-%d", w->id, i);
        auditbuf_status s;
        switch (i % 3) {
        case 0: {
            auditbuf_event ev = sample_event(id);
            s = auditbuf_record_event(w->p, &ev);
            break;
        }
        case 1: {
            int len = snprintf(line, sizeof line,
                               "{\"event_type\":\"c.json\",\"correlation_id\":\"%s\"}", id);
            s = auditbuf_record_json(w->p, (const uint8_t *)line, (size_t)len);
            break;
        }
        default: {
            auditbuf_flat_event fl;
            memset(&fl, 0, sizeof fl);
            fl.version = AUDITBUF_FLAT_VERSION;
            int len = snprintf(buf, sizeof buf, "c.flatgatewayreceivedsuccess%s", id);
            fl.present = 1u << AUDITBUF_FIELD_EVENT_TYPE | 1u << AUDITBUF_FIELD_EVENT_CATEGORY |
                         1u << AUDITBUF_FIELD_EVENT_ACTION |
                         1u << AUDITBUF_FIELD_EVENT_OUTCOME | 1u << AUDITBUF_FIELD_CORRELATION_ID;
            fl.spans[AUDITBUF_FIELD_EVENT_TYPE] = (auditbuf_span){0, 6};
            fl.spans[AUDITBUF_FIELD_EVENT_CATEGORY] = (auditbuf_span){6, 7};
            fl.spans[AUDITBUF_FIELD_EVENT_ACTION] = (auditbuf_span){13, 8};
            fl.spans[AUDITBUF_FIELD_EVENT_OUTCOME] = (auditbuf_span){21, 7};
            fl.spans[AUDITBUF_FIELD_CORRELATION_ID] = (auditbuf_span){28, (uint32_t)len - 28};
            s = auditbuf_record_flat(w->p, &fl, (const uint8_t *)buf, (size_t)len);
            break;
        }
        }
        if (s == AUDITBUF_OK) {
            w->accepted++;
        } else if (w->until_closed && s == AUDITBUF_CLOSED) {
            w->closed++;
            if (w->closed >= 100) break;
        } else {
            CHECK_STATUS(s, AUDITBUF_OK);
        }
    }
    return NULL;
}

void test_threads(void) {
    enum { THREADS = 8 };
    /* Lossless: block when the queue is full, for up to 30 s (under valgrind, which runs one
     * thread at a time, the whole test takes 20-40 s). */
    auditbuf_pipeline *p =
        to_receiver("\"queue_capacity\":2000,\"overflow\":\"block\",\"block_timeout_ms\":30000,");
    worker w[THREADS];
    pthread_t t[THREADS];
    int n = (int)(2000 * test_scale());
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){p, i, n, 0, 0, 0};
        CHECK(pthread_create(&t[i], NULL, record_many, &w[i]) == 0);
    }
    /* Every snapshot balances, while eight threads record and the flush thread sends. */
    for (int i = 0; i < 200; i++) {
        auditbuf_stats s = stats_of(p);
        check_invariant(&s);
    }
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 30000, &r), AUDITBUF_OK);
    uint64_t total = (uint64_t)THREADS * (uint64_t)n;
    for (int i = 0; i < THREADS; i++) CHECK_EQ_U64(w[i].accepted, (uint64_t)n);
    CHECK_EQ_U64(r.stats.recorded, total);
    CHECK_EQ_U64(r.stats.delivered, total);
    CHECK_EQ_U64(r.stats.rejected_queue_full + r.stats.rejected_block_timeout, 0);
    check_invariant(&r.stats);
    auditbuf_pipeline_free(p);
    if (getenv("AUDITBUF_TEST_URL")) http_delivered += total;
}

void test_close_while_recording(void) {
    enum { THREADS = 4 };
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{\"overflow\":\"block\",\"block_timeout_ms\":10000}");
    worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){p, i, 0, 0, 0, 1};
        CHECK(pthread_create(&t[i], NULL, record_many, &w[i]) == 0);
    }
    /* Close once events flow; the recording threads see AUDITBUF_CLOSED, never a crash. */
    while (collector_count(&c) < 100) {
        auditbuf_report r = new_report();
        auditbuf_status s = auditbuf_flush(p, 1000, &r);
        CHECK(s == AUDITBUF_OK || s == AUDITBUF_TIMEOUT);
    }
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 10000, &r), AUDITBUF_OK);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    uint64_t accepted = 0, closed = 0;
    for (int i = 0; i < THREADS; i++) {
        accepted += w[i].accepted;
        closed += w[i].closed;
    }
    auditbuf_stats s = stats_of(p);
    CHECK_EQ_U64(s.recorded, accepted);
    CHECK_EQ_U64(s.rejected_closed, closed);
    CHECK_EQ_U64(s.delivered, accepted);
    CHECK_EQ_U64(collector_count(&c), accepted);
    check_invariant(&s);
    auditbuf_pipeline_free(p);
    collector_free(&c);
}
