/* Runs the C tests of the auditbuf ABI: all of them, or those named on the command line.
 * Prints "EXPECT delivered N" for the harness, which checks its receiver got N events. */
#define _GNU_SOURCE
#include "check.h"

extern uint64_t http_delivered;

static const struct {
    const char *name;
    void (*run)(void);
} TESTS[] = {
    {"basics", test_basics},
    {"config", test_config},
    {"config_check_env", test_config_check_env},
    {"statuses", test_statuses},
    {"overload", test_overload},
    {"after_close", test_after_close},
    {"callback_outcomes", test_callback_outcomes},
    {"batches", test_batches},
    {"reentrant", test_reentrant},
    {"fork_flush_close", test_fork_flush_close},
    {"fork_during_callback", test_fork_during_callback},
    {"stats_sizes", test_stats_sizes},
    {"vectors", test_vectors},
    {"http", test_http},
    {"threads", test_threads},
    {"close_while_recording", test_close_while_recording},
    {"metrics", test_metrics},
    {"pipeline_last_error", test_pipeline_last_error},
    {"cadf", test_cadf},
    {"cadf_list_elements", test_cadf_list_elements},
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        int wanted = argc == 1;
        for (int a = 1; a < argc; a++) wanted |= !strcmp(argv[a], TESTS[i].name);
        if (!wanted) continue;
        TESTS[i].run();
        printf("ok %s\n", TESTS[i].name);
        fflush(stdout);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 1;
    }
    printf("EXPECT delivered %llu\n", (unsigned long long)http_delivered);
    return 0;
}
