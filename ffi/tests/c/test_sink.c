/* The callback sink's outcomes, and the batch calls. */
#define _GNU_SOURCE
#include "check.h"

#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* What a callback calling back into its own pipeline does, and what it got. */
typedef struct reentrant {
    auditbuf_pipeline *p;
    int mode; /* 0: record 3 children per parent; 1: flush then close; 2: free */
    int armed;
    int calls_after_free;
    int freed;
    int done; /* the callback did what its mode asks */
    size_t ok, full, closed, other;
    auditbuf_status flushed, closed_status;
    double flush_took, close_took;
    size_t delivered;
    /* Held by every callback call, and by the test while it sets the case up or reads. */
    pthread_mutex_t gate;
} reentrant;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint32_t call_back(reentrant *r, const auditbuf_bytes *events, size_t n);

static uint32_t calling_back(void *user, const auditbuf_bytes *events, size_t n) {
    reentrant *r = user;
    pthread_mutex_lock(&r->gate);
    uint32_t outcome = call_back(r, events, n);
    pthread_mutex_unlock(&r->gate);
    return outcome;
}

/* Reads `*field` under the gate (the callback writes it on the flush thread). */
static int read_gated(reentrant *r, const int *field) {
    pthread_mutex_lock(&r->gate);
    int v = *field;
    pthread_mutex_unlock(&r->gate);
    return v;
}

static uint32_t call_back(reentrant *r, const auditbuf_bytes *events, size_t n) {
    if (r->freed) {
        r->calls_after_free++;
        return AUDITBUF_SINK_DELIVERED;
    }
    if (!r->armed) {
        r->delivered += n;
        return AUDITBUF_SINK_DELIVERED;
    }
    if (r->mode == 0) {
        r->delivered += n;
        for (size_t i = 0; i < n; i++) {
            if (!memmem(events[i].ptr, events[i].len, "\"depth\":0", 9)) continue;
            for (int child = 0; child < 3; child++) {
                const char *json = "{\"depth\":1}";
                auditbuf_status s = auditbuf_record_json(r->p, (const uint8_t *)json, strlen(json));
                if (s == AUDITBUF_OK) r->ok++;
                else if (s == AUDITBUF_FULL) r->full++;
                else if (s == AUDITBUF_CLOSED) r->closed++;
                else r->other++;
            }
        }
    } else if (r->mode == 1) {
        r->delivered += n;
        r->armed = 0;
        auditbuf_report rep = new_report();
        double t0 = now_s();
        r->flushed = auditbuf_flush(r->p, 20000, &rep);
        CHECK(last_error_has("own sink callback"));
        r->flush_took = now_s() - t0;
        t0 = now_s();
        r->closed_status = auditbuf_close(r->p, 20000, &rep);
        CHECK(last_error_has("own sink callback"));
        r->close_took = now_s() - t0;
        r->done = 1;
    } else {
        /* Asked again for this batch (a retry), the callback must not be called. */
        r->freed = 1;
        auditbuf_pipeline_free(r->p);
        r->done = 1;
        return AUDITBUF_SINK_RETRY;
    }
    return AUDITBUF_SINK_DELIVERED;
}

/* Starts the case's pipeline with the gate held: the callback waits until the test has
 * recorded and armed it (release_gate). */
static auditbuf_pipeline *calling_back_pipeline(reentrant *r, const char *config) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->gate, NULL);
    pthread_mutex_lock(&r->gate);
    auditbuf_pipeline *p = NULL;
    CHECK_STATUS(auditbuf_pipeline_new_callback(config, strlen(config), calling_back, r, &p),
                 AUDITBUF_OK);
    r->p = p;
    return p;
}

/* Records {"i":0} to {"i":9}. */
static void record_ten(auditbuf_pipeline *p) {
    char line[32];
    for (int i = 0; i < 10; i++) {
        snprintf(line, sizeof line, "{\"i\":%d}", i);
        CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)line, strlen(line)), AUDITBUF_OK);
    }
}

/* Records ten events, arms the callback for `mode`, lets it run, and waits (up to 20 s)
 * until it has done what the mode asks. */
static auditbuf_pipeline *run_case(reentrant *r, const char *config, int mode) {
    auditbuf_pipeline *p = calling_back_pipeline(r, config);
    record_ten(p);
    r->mode = mode;
    r->armed = 1;
    pthread_mutex_unlock(&r->gate);
    for (int waited = 0; !read_gated(r, &r->done) && waited < 20000; waited++) usleep(1000);
    return p;
}

/* A callback may call back into its own pipeline: nothing there waits for the flush thread
 * that runs it, so nothing hangs. */
void test_reentrant(void) {
    /* Records under block into a full queue: turned away with FULL at once. Armed before
     * the records, which wait for the flush thread: the gate is let go at once. */
    reentrant r;
    auditbuf_pipeline *p = calling_back_pipeline(
        &r, "{\"queue_capacity\":4,\"batch_max_events\":2,\"flush_interval_ms\":1,"
            "\"overflow\":\"block\",\"block_timeout_ms\":30000}");
    r.armed = 1;
    pthread_mutex_unlock(&r.gate);
    char line[64];
    double t0 = now_s();
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof line, "{\"depth\":0,\"i\":%d}", i);
        CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)line, strlen(line)), AUDITBUF_OK);
    }
    auditbuf_report rep = new_report();
    CHECK_STATUS(auditbuf_flush(p, 30000, &rep), AUDITBUF_OK);
    CHECK_STATUS(auditbuf_close(p, 30000, &rep), AUDITBUF_OK);
    CHECK(now_s() - t0 < 20);
    pthread_mutex_lock(&r.gate); /* the flush thread has stopped: for the reads */
    CHECK(r.ok + r.full + r.closed == 60 && r.ok > 0 && r.other == 0);
    CHECK_EQ_U64(rep.stats.recorded, 20 + r.ok);
    CHECK_EQ_U64(rep.stats.rejected_queue_full, r.full);
    CHECK_EQ_U64(rep.stats.delivered, rep.stats.recorded);
    CHECK_EQ_U64(r.delivered, rep.stats.delivered);
    pthread_mutex_unlock(&r.gate);
    check_invariant(&rep.stats);
    auditbuf_pipeline_free(p);

    /* Flush and close from the callback: TIMEOUT at once, the close done when it returns.
     * One batch, sent by the timer; the callback waits for the gate, let go once all 10
     * are recorded and the callback armed. */
    const char *one_batch = "{\"batch_max_events\":100,\"flush_interval_ms\":300,"
                            "\"retry\":{\"backoff_base_ms\":1,\"backoff_cap_ms\":2}}";
    p = run_case(&r, one_batch, 1);
    CHECK(read_gated(&r, &r.done));
    rep = new_report();
    /* The callback's close came first: this one waits for it, and says it was a second. */
    CHECK_STATUS(auditbuf_close(p, 20000, &rep), AUDITBUF_CLOSED);
    CHECK(rep.completed == 1);
    CHECK(r.flushed == AUDITBUF_TIMEOUT && r.flush_took < 1);
    CHECK(r.closed_status == AUDITBUF_TIMEOUT && r.close_took < 1);
    CHECK_EQ_U64(rep.stats.delivered, 10);
    check_invariant(&rep.stats);
    auditbuf_pipeline_free(p);

    /* Free from the callback: returns, and the callback is not called again, not even for
     * the retry of its own batch. */
    p = run_case(&r, one_batch, 2);
    CHECK(read_gated(&r, &r.freed));
    usleep(300000); /* the close that the free began retries the batch for up to 1 s */
    CHECK(read_gated(&r, &r.calls_after_free) == 0);
}

static const char *const ONE_EVENT = "{\"a\":1}";

/* Runs `child(p)` in a fork() child, which must return non-zero, and waits for it. The child
 * leaves through exec: it cannot free the parent's pipeline (its flush thread is not
 * there), which a leak checker run at the child's exit would count. One that hangs is
 * killed by SIGALRM, which the parent sees. */
static void in_forked_child(int (*child)(auditbuf_pipeline *p), auditbuf_pipeline *p) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        int ok = child(p);
        execl(ok ? "/bin/true" : "/bin/false", ok ? "true" : "false", (char *)NULL);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The parent's close after the fork: its one event delivered, the accounting exact. */
static void close_with_one_delivered(auditbuf_pipeline *p, collector *c) {
    auditbuf_report rep = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &rep), AUDITBUF_OK);
    CHECK_EQ_U64(rep.stats.delivered, 1);
    check_invariant(&rep.stats);
    auditbuf_pipeline_free(p);
    collector_free(c);
}

static int flush_close_record_say_forked(auditbuf_pipeline *p) {
    auditbuf_report rep = new_report();
    const uint8_t *json = (const uint8_t *)ONE_EVENT;
    return auditbuf_flush(p, 1000, &rep) == AUDITBUF_FORKED && last_error_has("fork()") &&
           auditbuf_close(p, 1000, &rep) == AUDITBUF_FORKED &&
           auditbuf_record_json(p, json, strlen(ONE_EVENT)) == AUDITBUF_FORKED;
}

/* In a fork() child the pipeline is the parent's: flush and close say so. */
void test_fork_flush_close(void) {
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{}");
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ONE_EVENT, strlen(ONE_EVENT)),
                 AUDITBUF_OK);
    in_forked_child(flush_close_record_say_forked, p);
    close_with_one_delivered(p, &c);
}

/* Held inside the callback until the test lets it go: the fork below happens there. */
typedef struct held {
    atomic_int inside, release;
} held;

static uint32_t hold(collector *c, const auditbuf_bytes *events, size_t n) {
    (void)events;
    (void)n;
    held *h = c->state;
    atomic_store(&h->inside, 1);
    for (int waited = 0; !atomic_load(&h->release) && waited < 20000; waited++) usleep(1000);
    return AUDITBUF_SINK_DELIVERED;
}

static int frees_without_waiting(auditbuf_pipeline *p) {
    auditbuf_pipeline_free(p);
    return 1;
}

/* A fork() while the parent's flush thread is inside the callback: the child's free must
 * not wait for that call, which no thread of the child will ever finish. */
void test_fork_during_callback(void) {
    collector c;
    collector_init(&c);
    held h = {0};
    c.state = &h;
    c.script = hold;
    auditbuf_pipeline *p = pipeline_to(&c, "{\"flush_interval_ms\":1}");
    CHECK_STATUS(auditbuf_record_json(p, (const uint8_t *)ONE_EVENT, strlen(ONE_EVENT)),
                 AUDITBUF_OK);
    for (int waited = 0; !atomic_load(&h.inside) && waited < 20000; waited++) usleep(1000);
    CHECK(atomic_load(&h.inside));
    in_forked_child(frees_without_waiting, p);
    atomic_store(&h.release, 1);
    close_with_one_delivered(p, &c);
}
