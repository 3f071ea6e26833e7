/* Shared helpers of the C tests: checks that say what failed, views, pipelines, a
 * collecting callback sink, and the accounting invariant. */
#ifndef AUDITBUF_TEST_CHECK_H
#define AUDITBUF_TEST_CHECK_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditbuf.h"

/* This thread's last error, for messages. */
const char *last_error(void);

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,      \
                    __LINE__, #cond, last_error());                                      \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_STATUS(call, want)                                                         \
    do {                                                                                 \
        auditbuf_status got_ = (call);                                                   \
        auditbuf_status want_ = (want);                                                  \
        if (got_ != want_) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n",         \
                    __FILE__, __LINE__, #call, auditbuf_status_name(got_),               \
                    auditbuf_status_name(want_), last_error());                          \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                               \
    do {                                                                                 \
        uint64_t a_ = (a), b_ = (b);                                                     \
        if (a_ != b_) {                                                                  \
            fprintf(stderr, "%s:%d: %s == %llu, want %s == %llu\n", __FILE__, __LINE__, #a, \
                    (unsigned long long)a_, #b, (unsigned long long)b_);                 \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* Whether this thread's last error contains `part`. */
int last_error_has(const char *part);

/* A NUL-terminated string as a view; NULL gives an absent field. */
auditbuf_bytes S(const char *s);

/* Creates a pipeline from a document naming its sink; fails the test on error. */
auditbuf_pipeline *pipeline_from(const char *config_json);

/* A callback sink that copies every batch it is given and answers with `answer` (or, when
 * `script` is set, with what it returns for the batch). */
typedef struct collector {
    pthread_mutex_t lock;
    char **events;
    size_t *lens;
    size_t n, cap;
    size_t calls;
    uint32_t (*script)(struct collector *c, const auditbuf_bytes *events, size_t n);
    void *state;
} collector;

void collector_init(collector *c);
void collector_free(collector *c);
uint32_t collector_sink(void *user, const auditbuf_bytes *events, size_t n);
auditbuf_pipeline *pipeline_to(collector *c, const char *config_json);
size_t collector_count(collector *c);

/* Stats and reports with their size set. */
auditbuf_stats stats_of(const auditbuf_pipeline *p);
auditbuf_report new_report(void);

/* Checks recorded + recovered == delivered + dead_lettered + failed + dropped + in_flight +
 * queued + stored, exactly. */
void check_invariant(const auditbuf_stats *s);

/* Events to record: a typed event with every required field, and a JSON line. */
auditbuf_event sample_event(const char *correlation_id);

/* The scale of the heavy tests (1 normally, smaller under valgrind): AUDITBUF_TEST_SCALE. */
double test_scale(void);

void test_basics(void);
void test_config(void);
void test_config_check_env(void);
void test_statuses(void);
void test_overload(void);
void test_after_close(void);
void test_callback_outcomes(void);
void test_batches(void);
void test_reentrant(void);
void test_fork_flush_close(void);
void test_fork_during_callback(void);
void test_stats_sizes(void);
void test_vectors(void);
void test_http(void);
void test_threads(void);
void test_close_while_recording(void);
void test_metrics(void);
void test_pipeline_last_error(void);
void test_cadf(void);
void test_cadf_list_elements(void);

#endif
