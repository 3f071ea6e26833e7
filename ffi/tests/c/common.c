/* Helpers shared by the C tests (see check.h). */
#define _GNU_SOURCE
#include "check.h"

const char *last_error(void) {
    static __thread char buf[1024];
    buf[0] = 0;
    auditbuf_last_error(buf, sizeof buf);
    return buf;
}

int last_error_has(const char *part) { return strstr(last_error(), part) != NULL; }

auditbuf_bytes S(const char *s) {
    auditbuf_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

auditbuf_pipeline *pipeline_from(const char *config_json) {
    auditbuf_pipeline *p = NULL;
    CHECK_STATUS(auditbuf_pipeline_new(config_json, strlen(config_json), &p), AUDITBUF_OK);
    CHECK(p != NULL);
    return p;
}

void collector_init(collector *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

void collector_free(collector *c) {
    for (size_t i = 0; i < c->n; i++) free(c->events[i]);
    free(c->events);
    free(c->lens);
    pthread_mutex_destroy(&c->lock);
}

uint32_t collector_sink(void *user, const auditbuf_bytes *events, size_t n) {
    collector *c = user;
    pthread_mutex_lock(&c->lock);
    c->calls++;
    uint32_t answer = c->script ? c->script(c, events, n) : AUDITBUF_SINK_DELIVERED;
    if (answer == AUDITBUF_SINK_DELIVERED) {
        for (size_t i = 0; i < n; i++) {
            if (c->n == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 64;
                c->events = realloc(c->events, c->cap * sizeof *c->events);
                c->lens = realloc(c->lens, c->cap * sizeof *c->lens);
                CHECK(c->events && c->lens);
            }
            c->events[c->n] = malloc(events[i].len + 1);
            CHECK(c->events[c->n]);
            memcpy(c->events[c->n], events[i].ptr, events[i].len);
            c->events[c->n][events[i].len] = 0;
            c->lens[c->n] = events[i].len;
            c->n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return answer;
}

auditbuf_pipeline *pipeline_to(collector *c, const char *config_json) {
    auditbuf_pipeline *p = NULL;
    CHECK_STATUS(auditbuf_pipeline_new_callback(config_json, strlen(config_json), collector_sink,
                                                c, &p),
                 AUDITBUF_OK);
    CHECK(p != NULL);
    return p;
}

size_t collector_count(collector *c) {
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

auditbuf_stats stats_of(const auditbuf_pipeline *p) {
    auditbuf_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    CHECK_STATUS(auditbuf_pipeline_stats(p, &s), AUDITBUF_OK);
    CHECK(s.size == sizeof s);
    return s;
}

auditbuf_report new_report(void) {
    auditbuf_report r;
    memset(&r, 0, sizeof r);
    r.size = sizeof r;
    return r;
}

void check_invariant(const auditbuf_stats *s) {
    uint64_t in = s->recorded + s->recovered;
    uint64_t out = s->delivered + s->dead_lettered + s->failed + s->dropped_shutdown +
                   s->dropped_store_full + s->dropped_damaged + s->dropped_oldest +
                   s->in_flight + s->queued + s->stored;
    if (in != out) {
        fprintf(stderr,
                "accounting broken: recorded %llu + recovered %llu != delivered %llu + "
                "dead_lettered %llu + failed %llu + dropped %llu/%llu/%llu/%llu + in_flight %llu + "
                "queued %llu + stored %llu\n",
                (unsigned long long)s->recorded, (unsigned long long)s->recovered,
                (unsigned long long)s->delivered, (unsigned long long)s->dead_lettered,
                (unsigned long long)s->failed, (unsigned long long)s->dropped_shutdown,
                (unsigned long long)s->dropped_store_full, (unsigned long long)s->dropped_damaged,
                (unsigned long long)s->dropped_oldest, (unsigned long long)s->in_flight, (unsigned long long)s->queued,
                (unsigned long long)s->stored);
        exit(1);
    }
}

auditbuf_event sample_event(const char *correlation_id) {
    auditbuf_event ev;
    memset(&ev, 0, sizeof ev);
    ev.event_type = S("gateway.signal.received");
    ev.event_category = S("gateway");
    ev.event_action = S("received");
    ev.event_outcome = S("success");
    ev.correlation_id = S(correlation_id);
    ev.actor_type = S("service");
    ev.actor_id = S("gateway");
    ev.event_data = S("{\"signal_type\":\"alert\",\"signal_name\":\"OOMKilled\"}");
    return ev;
}

double test_scale(void) {
    const char *s = getenv("AUDITBUF_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}
