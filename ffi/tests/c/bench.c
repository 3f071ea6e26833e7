/* Per-call cost of the C ABI's record calls (p50, p99, p99.9 of individually timed calls),
 * null sink, lossless ("overflow":"block"): run by ffi/run-c-bench beside
 * `cargo run --release -p auditbuf-ffi --example rust_latency`, which times the Rust calls
 * the same way on the same events. Usage: bench [calls] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auditbuf.h"

static const char *CONFIG = "{\"queue_capacity\":10000,\"overflow\":\"block\","
                            "\"block_timeout_ms\":10000,\"sink\":{\"type\":\"null\"}}";
/* The typed event's wire form, with its timestamp: record_json reads no clock for it. */
static const char *LINE =
    "{\"version\":\"1.0\",\"event_type\":\"gateway.signal.received\",\"event_timestamp\":"
    "\"2026-11-30T10:00:00.000Z\",\"event_category\":\"gateway\",\"event_action\":\"received\","
    "\"event_outcome\":\"success\",\"correlation_id\":\"rr-2026-001\",\"actor_id\":\"gateway\","
    "\"event_data\":{\"event_type\":\"gateway.signal.received\",\"signal_name\":\"OOMKilled\","
    "\"fingerprint\":\"fp-abc123\"}}";
static const char *PAYLOAD = "{\"signal_name\":\"OOMKilled\",\"fingerprint\":\"fp-abc123\"}";

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static auditbuf_bytes str(const char *s) {
    auditbuf_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

typedef enum { EVENT, FLAT, JSON, BATCH } kind;
#define BATCH_SIZE 64

static void run(const char *name, kind k, size_t calls, uint32_t *lat) {
    auditbuf_pipeline *p = NULL;
    if (auditbuf_pipeline_new(CONFIG, strlen(CONFIG), &p) != AUDITBUF_OK) exit(1);
    auditbuf_event ev = {0};
    ev.event_type = str("gateway.signal.received");
    ev.event_category = str("gateway");
    ev.event_action = str("received");
    ev.event_outcome = str("success");
    ev.correlation_id = str("rr-2026-001");
    ev.actor_id = str("gateway");
    ev.event_data = str(PAYLOAD);
    char buf[512];
    auditbuf_flat_event fl = {0};
    fl.version = AUDITBUF_FLAT_VERSION;
    const char *fields[] = {"gateway.signal.received", "gateway", "received", "success",
                            "rr-2026-001", "gateway", PAYLOAD};
    uint32_t idx[] = {AUDITBUF_FIELD_EVENT_TYPE, AUDITBUF_FIELD_EVENT_CATEGORY,
                      AUDITBUF_FIELD_EVENT_ACTION, AUDITBUF_FIELD_EVENT_OUTCOME,
                      AUDITBUF_FIELD_CORRELATION_ID, AUDITBUF_FIELD_ACTOR_ID,
                      AUDITBUF_FIELD_EVENT_DATA};
    size_t at = 0;
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(fields[i]);
        memcpy(buf + at, fields[i], n);
        fl.spans[idx[i]] = (auditbuf_span){(uint32_t)at, (uint32_t)n};
        fl.present |= 1u << idx[i];
        at += n;
    }
    size_t line_len = strlen(LINE);
    char *many = malloc(line_len * BATCH_SIZE);
    auditbuf_span spans[BATCH_SIZE];
    for (int i = 0; i < BATCH_SIZE; i++) {
        memcpy(many + (size_t)i * line_len, LINE, line_len);
        spans[i] = (auditbuf_span){(uint32_t)(i * line_len), (uint32_t)line_len};
    }
    size_t rounds = k == BATCH ? calls / BATCH_SIZE : calls;
    size_t warmup = rounds / 10, rejected = 0, taken;
    for (size_t i = 0; i < warmup + rounds; i++) {
        uint64_t t0 = now_ns();
        auditbuf_status s;
        switch (k) {
        case EVENT: s = auditbuf_record_event(p, &ev); break;
        case FLAT: s = auditbuf_record_flat(p, &fl, (const uint8_t *)buf, at); break;
        case JSON: s = auditbuf_record_json(p, (const uint8_t *)LINE, line_len); break;
        default:
            s = auditbuf_record_json_batch(p, (const uint8_t *)many, line_len * BATCH_SIZE,
                                           spans, BATCH_SIZE, &taken);
            break;
        }
        uint64_t t1 = now_ns();
        if (i >= warmup) {
            lat[i - warmup] = (uint32_t)((t1 - t0) / (k == BATCH ? BATCH_SIZE : 1));
            if (s != AUDITBUF_OK) rejected++;
        }
    }
    auditbuf_report r = {0};
    r.size = sizeof r;
    auditbuf_close(p, 10000, &r);
    auditbuf_pipeline_free(p);
    free(many);
    qsort(lat, rounds, sizeof *lat, by_value);
    uint64_t sum = 0;
    for (size_t i = 0; i < rounds; i++) sum += lat[i];
    printf("%-34s p50 %5u ns  p99 %6u ns  p99.9 %6u ns  mean %5.0f ns  rejected %zu/%zu\n", name,
           lat[rounds / 2], lat[rounds * 99 / 100], lat[rounds * 999 / 1000],
           (double)sum / (double)rounds, rejected, rounds);
}

int main(int argc, char **argv) {
    size_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint32_t *lat = malloc(calls * sizeof *lat);
    run("C auditbuf_record_event", EVENT, calls, lat);
    run("C auditbuf_record_flat", FLAT, calls, lat);
    run("C auditbuf_record_json", JSON, calls, lat);
    run("C auditbuf_record_json_batch/64", BATCH, calls, lat);
    free(lat);
    return 0;
}
