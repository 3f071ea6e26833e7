/* Every status code the ABI returns, with its message and its counter. */
#define _GNU_SOURCE
#include <stddef.h>

#include "check.h"

static const char *NULL_SINK = "{\"sink\":{\"type\":\"null\"}}";

void test_basics(void) {
    CHECK(strcmp(auditbuf_version(), "0.1.0") == 0);
    CHECK(strcmp(auditbuf_status_name(AUDITBUF_OK), "AUDITBUF_OK") == 0);
    CHECK(strcmp(auditbuf_status_name(AUDITBUF_FULL), "AUDITBUF_FULL") == 0);
    CHECK(strcmp(auditbuf_status_name(AUDITBUF_PANIC), "AUDITBUF_PANIC") == 0);
    CHECK(strcmp(auditbuf_status_name(9999), "AUDITBUF_UNKNOWN") == 0);
    /* Length only, then a cut copy: like snprintf. */
    auditbuf_record_json(NULL, (const uint8_t *)"{}", 2);
    size_t n = auditbuf_last_error(NULL, 0);
    CHECK(n == strlen("pipeline is NULL"));
    char small[5];
    CHECK(auditbuf_last_error(small, sizeof small) == n);
    CHECK(strcmp(small, "pipe") == 0);
}

void test_config(void) {
    auditbuf_pipeline *p = (auditbuf_pipeline *)&p; /* must be reset to NULL */
    const char *doc = "{\"queue_capacty\":5,\"sink\":{\"type\":\"null\"}}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_CONFIG);
    CHECK(p == NULL);
    CHECK(last_error_has("queue_capacty"));
    doc = "{\"sink\":{\"type\":\"http\",\"url\":\"http://127.0.0.1:9\",\"timeout\":5}}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_CONFIG);
    CHECK(last_error_has("sink.timeout"));
    doc = "{\"service\":\"gw\"}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_CONFIG);
    CHECK(last_error_has("sink"));
    doc = "{\"sink\":{\"type\":\"null\"}} trailing";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_CONFIG);
    doc = "{\"service\":\"\xff\"}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_CONFIG);
    CHECK(last_error_has("UTF-8"));
    doc = "{\"sink\":{\"type\":\"http\",\"url\":\"http://127.0.0.1:9\",\"token_file\":\"/nonexistent/token\"}}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_IO);
    CHECK(last_error_has("/nonexistent/token"));
    CHECK_STATUS(auditbuf_pipeline_new(NULL, 0, &p), AUDITBUF_NULL_PARAMETER);
    CHECK(last_error_has("config_json"));
    CHECK_STATUS(auditbuf_pipeline_new(NULL_SINK, strlen(NULL_SINK), NULL),
                 AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_pipeline_new_callback("{}", 2, NULL, NULL, &p), AUDITBUF_NULL_PARAMETER);
    CHECK(last_error_has("callback"));
    CHECK(p == NULL);
    collector c;
    collector_init(&c);
    CHECK_STATUS(auditbuf_pipeline_new_callback(NULL_SINK, strlen(NULL_SINK), collector_sink, &c,
                                                &p),
                 AUDITBUF_CONFIG);
    CHECK(last_error_has("sink"));
    collector_free(&c);
    auditbuf_pipeline_free(NULL); /* fine */
}

/* Checks a value of ${prefix}_CONFIG and ${prefix}_BACKING_STORE (NULL: unset). */
static auditbuf_status check_env(const char *config, const char *store) {
    return auditbuf_config_check_env("AUDIT", 5, config, config ? strlen(config) : 0, store,
                                     store ? strlen(store) : 0);
}

/* The message of the last call is exactly `want`. */
#define CHECK_MESSAGE(want) CHECK(strcmp(last_error(), (want)) == 0)

void test_config_check_env(void) {
    CHECK_STATUS(check_env(NULL, NULL), AUDITBUF_OK);
    CHECK_STATUS(check_env("{\"queue_capacity\":7,\"durability\":\"wal\"}",
                           "{\"type\":\"file\",\"params\":{\"path\":\"/nonexistent/audit\"}}"),
                 AUDITBUF_OK); /* nothing is opened */
    CHECK_STATUS(check_env("{\"queue_capacity\":0}", NULL), AUDITBUF_CONFIG);
    CHECK_MESSAGE("invalid configuration: AUDIT_CONFIG: queue_capacity: is 0, must be at least 1");
    CHECK_STATUS(check_env("{\"service\":\"\"}", NULL), AUDITBUF_CONFIG);
    CHECK_MESSAGE("invalid configuration: AUDIT_CONFIG: service: is 0 bytes long, must be 1 to 255");
    CHECK_STATUS(check_env("{\"queue_capacity\":null}", NULL), AUDITBUF_CONFIG);
    CHECK(last_error_has("AUDIT_CONFIG: queue_capacity: is null"));
    CHECK_STATUS(check_env("{\"queue_capacty\":5}", NULL), AUDITBUF_CONFIG);
    CHECK(last_error_has("AUDIT_CONFIG: queue_capacty: unknown field `queue_capacty`, expected one of"));
    CHECK_STATUS(check_env("{}", "{\"type\":\"file\",\"params\":{}}"), AUDITBUF_CONFIG);
    CHECK_MESSAGE("invalid configuration: AUDIT_BACKING_STORE: params: missing field `path`");
    /* Set but empty is not unset; the settings are checked first. */
    CHECK_STATUS(check_env("", "{\"type\":\"tape\"}"), AUDITBUF_CONFIG);
    CHECK(last_error_has("AUDIT_CONFIG: (document): is empty, must be a JSON object"));
    /* An object spelled as an array is not read field by field. */
    CHECK_STATUS(check_env("{\"retry\":[3]}", NULL), AUDITBUF_CONFIG);
    CHECK(last_error_has("AUDIT_CONFIG: retry: invalid type: an array, expected an object"));
    CHECK_STATUS(check_env("[[[[", NULL), AUDITBUF_CONFIG);
    CHECK(last_error_has("AUDIT_CONFIG: (document): must be a JSON object"));
    CHECK_STATUS(check_env("{\"service\":\"\xff\"}", NULL), AUDITBUF_CONFIG);
    CHECK_MESSAGE("invalid configuration: AUDIT_CONFIG: is not valid UTF-8");
    /* Arguments. */
    CHECK_STATUS(auditbuf_config_check_env(NULL, 0, NULL, 0, NULL, 0), AUDITBUF_NULL_PARAMETER);
    CHECK(last_error_has("prefix"));
    CHECK_STATUS(auditbuf_config_check_env("A\xff", 2, NULL, 0, NULL, 0),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK_MESSAGE("prefix: not valid UTF-8 at byte 1");
}

void test_statuses(void) {
    auditbuf_pipeline *p = pipeline_from(
        "{\"max_event_bytes\":1024,\"sink\":{\"type\":\"null\"}}");
    const char *ok = "{\"event_type\":\"x\"}";
    CHECK_STATUS(auditbuf_record_json(NULL, (const uint8_t *)ok, strlen(ok)),
                 AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_record_json(p, NULL, 3), AUDITBUF_NULL_PARAMETER);
    CHECK(last_error_has("json is NULL"));
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ok, SIZE_MAX), AUDITBUF_INVALID_PARAMETER);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ok, strlen(ok)), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"{\"a\":\"\xc3\x28\"}", 10),
                 AUDITBUF_INVALID_UTF8);
    CHECK(last_error_has("UTF-8 at byte 6"));
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"{\"a\":", 5), AUDITBUF_INVALID_JSON);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"[1]", 3), AUDITBUF_NOT_AN_OBJECT);
    char big[2000];
    memset(big, 'a', sizeof big);
    memcpy(big, "{\"a\":\"", 6);
    memcpy(big + sizeof big - 2, "\"}", 2);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)big, sizeof big), AUDITBUF_TOO_LARGE);
    CHECK(last_error_has("max_event_bytes limit of 1024"));

    auditbuf_event ev = sample_event("rr-1");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_record_event(p, NULL), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_record_event(NULL, &ev), AUDITBUF_NULL_PARAMETER);
    ev.correlation_id = S(NULL);
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_MISSING_FIELD);
    CHECK(last_error_has("correlation_id"));
    ev = sample_event("rr-1");
    ev.actor_id = S("bad \xff byte");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_INVALID_FIELD);
    CHECK(last_error_has("actor_id"));
    ev = sample_event("rr-1");
    ev.actor_ip.ptr = NULL;
    ev.actor_ip.len = 4;
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("actor_ip"));
    ev = sample_event("rr-1");
    ev.event_data = S("{\"signal_type\":");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_INVALID_JSON);
    ev.event_data = S("{\"event_type\":\"other\"}");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_INVALID_FIELD);
    CHECK(last_error_has("event_type"));

    /* The flat form: its own checks, then the same rules. */
    const char *buf = "auth.loginsecurityloginsuccessrr-2";
    auditbuf_flat_event fl;
    memset(&fl, 0, sizeof fl);
    fl.version = AUDITBUF_FLAT_VERSION;
    fl.present = 1u << AUDITBUF_FIELD_EVENT_TYPE | 1u << AUDITBUF_FIELD_EVENT_CATEGORY |
                 1u << AUDITBUF_FIELD_EVENT_ACTION | 1u << AUDITBUF_FIELD_EVENT_OUTCOME |
                 1u << AUDITBUF_FIELD_CORRELATION_ID;
    fl.spans[AUDITBUF_FIELD_EVENT_TYPE] = (auditbuf_span){0, 10};
    fl.spans[AUDITBUF_FIELD_EVENT_CATEGORY] = (auditbuf_span){10, 8};
    fl.spans[AUDITBUF_FIELD_EVENT_ACTION] = (auditbuf_span){18, 5};
    fl.spans[AUDITBUF_FIELD_EVENT_OUTCOME] = (auditbuf_span){23, 7};
    fl.spans[AUDITBUF_FIELD_CORRELATION_ID] = (auditbuf_span){30, 4};
    size_t len = strlen(buf);
    CHECK_STATUS(auditbuf_record_flat(p, &fl, (const uint8_t *)buf, len), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_record_flat(p, &fl, NULL, len), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_record_flat(p, NULL, (const uint8_t *)buf, len), AUDITBUF_NULL_PARAMETER);
    auditbuf_flat_event bad = fl;
    bad.version = 2;
    CHECK_STATUS(auditbuf_record_flat(p, &bad, (const uint8_t *)buf, len),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("version"));
    bad = fl;
    bad.present |= 1u << 23;
    CHECK_STATUS(auditbuf_record_flat(p, &bad, (const uint8_t *)buf, len),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("present"));
    bad = fl;
    bad.spans[AUDITBUF_FIELD_CORRELATION_ID].len = 5;
    CHECK_STATUS(auditbuf_record_flat(p, &bad, (const uint8_t *)buf, len),
                 AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("correlation_id"));
    bad = fl;
    bad.spans[AUDITBUF_FIELD_ACTOR_ID] = (auditbuf_span){4000000000u, 9}; /* absent: ignored */
    CHECK_STATUS(auditbuf_record_flat(p, &bad, (const uint8_t *)buf, len), AUDITBUF_OK);
    bad.present &= ~(1u << AUDITBUF_FIELD_EVENT_OUTCOME);
    CHECK_STATUS(auditbuf_record_flat(p, &bad, (const uint8_t *)buf, len), AUDITBUF_MISSING_FIELD);
    CHECK(last_error_has("event_outcome"));

    /* Every rejection that reached the pipeline is counted, by reason; argument errors are
     * not (they never reached it). */
    auditbuf_stats s = stats_of(p);
    CHECK_EQ_U64(s.rejected_invalid_utf8, 1);
    CHECK_EQ_U64(s.rejected_invalid_json, 2);
    CHECK_EQ_U64(s.rejected_not_an_object, 1);
    CHECK_EQ_U64(s.rejected_too_large, 1);
    CHECK_EQ_U64(s.rejected_missing_field, 2);
    CHECK_EQ_U64(s.rejected_invalid_field, 2);
    CHECK_STATUS(auditbuf_pipeline_stats(p, NULL), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_pipeline_stats(NULL, &s), AUDITBUF_NULL_PARAMETER);
    s.size = 4;
    CHECK_STATUS(auditbuf_pipeline_stats(p, &s), AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("auditbuf_stats.size"));
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    CHECK(r.completed == 1);
    CHECK_EQ_U64(r.stats.recorded, 4);
    CHECK_EQ_U64(r.stats.delivered, 4);
    CHECK_EQ_U64(r.left, 0);
    check_invariant(&r.stats);
    auditbuf_pipeline_free(p);
}

/* A callback that holds the flush thread until released, to fill the queue. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, released;
} gate;

static uint32_t hold(collector *c, const auditbuf_bytes *events, size_t n) {
    (void)events;
    (void)n;
    gate *g = c->state;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&g->lock);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->released) pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_lock(&c->lock);
    return AUDITBUF_SINK_DELIVERED;
}

static void overload(const char *config, auditbuf_status want, int block) {
    collector c;
    collector_init(&c);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    c.script = hold;
    c.state = &g;
    auditbuf_pipeline *p = pipeline_to(&c, config);
    const char *ev = "{\"event_type\":\"x\"}";
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ev, strlen(ev)), AUDITBUF_OK);
    /* A flush makes the flush thread take the event into the (holding) callback. */
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_flush(p, 0, &r), AUDITBUF_TIMEOUT);
    CHECK(r.completed == 0);
    pthread_mutex_lock(&g.lock);
    while (!g.entered) pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    uint64_t accepted = 1, refused = 0;
    for (int i = 0; i < 10; i++) {
        auditbuf_status s = auditbuf_record_json(p, (const uint8_t *)ev, strlen(ev));
        if (s == AUDITBUF_OK) {
            accepted++;
        } else {
            CHECK_STATUS(s, want);
            refused++;
        }
    }
    CHECK(refused >= 8);
    auditbuf_stats s = stats_of(p);
    CHECK_EQ_U64(block ? s.rejected_block_timeout : s.rejected_queue_full, refused);
    CHECK_EQ_U64(s.recorded, accepted);
    check_invariant(&s);
    pthread_mutex_lock(&g.lock);
    g.released = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    CHECK_EQ_U64(r.stats.delivered, accepted);
    check_invariant(&r.stats);
    auditbuf_pipeline_free(p);
    collector_free(&c);
}

void test_overload(void) {
    overload("{\"queue_capacity\":1}", AUDITBUF_FULL, 0);
    overload("{\"queue_capacity\":1,\"overflow\":\"block\",\"block_timeout_ms\":1}",
             AUDITBUF_TIMEOUT, 1);
}

void test_after_close(void) {
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{}");
    auditbuf_event ev = sample_event("rr-close");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_OK);
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    CHECK_EQ_U64(r.stats.delivered, 1);
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_CLOSED);
    CHECK(last_error_has("closed"));
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"{}", 2), AUDITBUF_CLOSED);
    CHECK_STATUS(auditbuf_flush(p, 100, &r), AUDITBUF_CLOSED);
    CHECK_STATUS(auditbuf_flush(p, 100, NULL), AUDITBUF_CLOSED);
    CHECK_STATUS(auditbuf_close(p, 100, &r), AUDITBUF_CLOSED);
    CHECK(r.completed == 1);
    CHECK_STATUS(auditbuf_close(p, 100, NULL), AUDITBUF_CLOSED);
    auditbuf_stats s = stats_of(p);
    CHECK_EQ_U64(s.rejected_closed, 2);
    CHECK_EQ_U64(s.delivered, 1);
    check_invariant(&s);
    CHECK(collector_count(&c) == 1);
    auditbuf_pipeline_free(p);
    collector_free(&c);
    /* Freed without close: closed by free. */
    collector_init(&c);
    p = pipeline_to(&c, "{}");
    CHECK_STATUS(auditbuf_record_event(p, &ev), AUDITBUF_OK);
    auditbuf_pipeline_free(p);
    CHECK(collector_count(&c) == 1);
    collector_free(&c);
}

void test_stats_sizes(void) {
    auditbuf_pipeline *p = pipeline_from(NULL_SINK);
    const char *ev = "{\"event_type\":\"x\"}";
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ev, strlen(ev)), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"[]", 2), AUDITBUF_NOT_AN_OBJECT);
    /* A caller built against an older, shorter struct: only its fields are written. */
    unsigned char raw[sizeof(auditbuf_stats) + 16];
    memset(raw, 0xAB, sizeof raw);
    auditbuf_stats *old = (auditbuf_stats *)raw;
    size_t old_size = offsetof(auditbuf_stats, delivered);
    old->size = old_size;
    CHECK_STATUS(auditbuf_pipeline_stats(p, old), AUDITBUF_OK);
    CHECK(old->size == old_size);
    CHECK_EQ_U64(old->recorded, 1);
    for (size_t i = old_size; i < sizeof raw; i++) CHECK(raw[i] == 0xAB);
    /* A newer, longer one: the library fills what it has and says how much. */
    memset(raw, 0xAB, sizeof raw);
    old->size = sizeof raw;
    CHECK_STATUS(auditbuf_pipeline_stats(p, old), AUDITBUF_OK);
    CHECK(old->size == sizeof(auditbuf_stats));
    CHECK_EQ_U64(old->rejected_not_an_object, 1);
    for (size_t i = sizeof(auditbuf_stats); i < sizeof raw; i++) CHECK(raw[i] == 0xAB);
    /* Reports too; a bad size is refused before the work. */
    auditbuf_report r = new_report();
    r.size = 3;
    CHECK_STATUS(auditbuf_flush(p, 1000, &r), AUDITBUF_INVALID_PARAMETER);
    r.size = offsetof(auditbuf_report, stats);
    CHECK_STATUS(auditbuf_flush(p, 5000, &r), AUDITBUF_OK);
    CHECK(r.completed == 1 && r.size == offsetof(auditbuf_report, stats));
    r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    CHECK(r.stats.size == sizeof(auditbuf_stats));
    CHECK_EQ_U64(r.stats.delivered, 1);
    auditbuf_pipeline_free(p);
}

void test_pipeline_last_error(void) {
    /* Nothing listens on port 1: every send fails, and the pipeline says why. */
    const char *doc = "{\"sink\":{\"type\":\"http\",\"url\":\"http://user:s3cret@127.0.0.1:1/events\"},"
                      "\"retry\":{\"max_attempts\":2,\"backoff_base_ms\":1,\"backoff_cap_ms\":5}}";
    auditbuf_pipeline *p = NULL;
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_OK);
    size_t n = 99;
    CHECK_STATUS(auditbuf_pipeline_last_error(p, NULL, 0, &n), AUDITBUF_OK);
    CHECK(n == 0); /* none yet */
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"{\"a\":1}", 7), AUDITBUF_OK);
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_flush(p, 10000, &r), AUDITBUF_OK);
    CHECK_EQ_U64(r.stats.failed, 1);
    char text[1024];
    CHECK_STATUS(auditbuf_pipeline_last_error(p, text, sizeof text, &n), AUDITBUF_OK);
    CHECK(n > 0 && n < sizeof text && strlen(text) == n);
    CHECK(strstr(text, "127.0.0.1:1") != NULL);
    CHECK(strstr(text, "s3cret") == NULL);
    CHECK_STATUS(auditbuf_pipeline_last_error(p, text, sizeof text, NULL), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_pipeline_last_error(NULL, text, sizeof text, &n), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_close(p, 1000, NULL), AUDITBUF_OK);
    /* Still there after close. */
    CHECK_STATUS(auditbuf_pipeline_last_error(p, text, sizeof text, &n), AUDITBUF_OK);
    CHECK(n > 0);
    auditbuf_pipeline_free(p);
}

void test_metrics(void) {
    const char *doc = "{\"service\":\"gw\",\"sink\":{\"type\":\"null\"}}";
    auditbuf_pipeline *p = NULL;
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &p), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)"{not json", 9), AUDITBUF_INVALID_JSON);
    size_t n = 0;
    /* Length first, then the whole text. */
    CHECK_STATUS(auditbuf_pipeline_metrics(p, NULL, 0, &n), AUDITBUF_OK);
    CHECK(n > 100);
    char *text = malloc(n + 1);
    CHECK(text != NULL);
    size_t again = 0;
    CHECK_STATUS(auditbuf_pipeline_metrics(p, text, n + 1, &again), AUDITBUF_OK);
    CHECK(again == n && strlen(text) == n);
    CHECK(strstr(text, "audit_events_dropped_total{service=\"gw\",reason=\"invalid_json\"} 1") != NULL);
    CHECK(strstr(text, "# TYPE audit_write_duration_seconds histogram") != NULL);
    /* A short buffer gets a cut, NUL-terminated copy. */
    char small[8];
    CHECK_STATUS(auditbuf_pipeline_metrics(p, small, sizeof small, &again), AUDITBUF_OK);
    CHECK(again == n && strlen(small) == sizeof small - 1);
    CHECK_STATUS(auditbuf_pipeline_metrics(p, small, sizeof small, NULL), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_pipeline_metrics(NULL, small, sizeof small, &again), AUDITBUF_NULL_PARAMETER);
    free(text);
    CHECK_STATUS(auditbuf_close(p, 1000, NULL), AUDITBUF_OK);
    auditbuf_pipeline_free(p);
}
