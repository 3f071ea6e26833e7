/* CADF events through auditbuf_record_cadf: every part of the event, generated id and
 * time, lists past the 8 converted in place, each refusal with its status and counter (an
 * element of a list named by its index), and the "rabbitmq" sink type of the
 * configuration document. */
#define _GNU_SOURCE
#include "check.h"

static auditbuf_cadf_resource resource(const char *type_uri, const char *id) {
    auditbuf_cadf_resource r;
    memset(&r, 0, sizeof r);
    r.type_uri = S(type_uri);
    r.id = S(id);
    return r;
}

static auditbuf_cadf_event minimal(void) {
    auditbuf_cadf_event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = S("create");
    ev.outcome = S("success");
    ev.initiator = resource("service/security/account/user", "u-1");
    ev.target = resource("compute/server", "s-1");
    ev.observer = resource("service/compute", "nova-api-01");
    return ev;
}

static void check_has(const char *event, const char *part) {
    if (!strstr(event, part)) {
        fprintf(stderr, "event %s\nlacks %s\n", event, part);
        exit(1);
    }
}

void test_cadf(void) {
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{\"service\":\"nova\"}");

    /* Every part, given id and time; ten addresses (more than the 8 kept in place). */
    auditbuf_cadf_address addresses[10];
    char urls[10][32];
    for (int i = 0; i < 10; i++) {
        snprintf(urls[i], sizeof urls[i], "https://h%d.example/v3", i);
        addresses[i].url = S(urls[i]);
        addresses[i].name = S(i == 0 ? "public" : NULL);
    }
    auditbuf_cadf_attachment attachments[2];
    memset(attachments, 0, sizeof attachments);
    attachments[0].name = S("payload");
    attachments[0].type_uri = S("mime:application/json");
    attachments[0].content = S("{\"flavor\": \"m1.small\"}");
    attachments[0].content_is_json = 1;
    attachments[1].type_uri = S("xs:string");
    attachments[1].content = S("quota \"exceeded\"");
    auditbuf_cadf_event ev = minimal();
    ev.id = S("7c9e6679-7425-40de-944b-e07fc1f90ae7");
    ev.event_time = S("2026-11-23T10:15:30.123456+00:00");
    ev.reason_type = S("HTTP");
    ev.reason_code = S("409");
    ev.initiator.name = S("ada");
    ev.initiator.addresses = addresses;
    ev.initiator.addresses_len = 10;
    ev.initiator.host_address = S("10.0.0.7");
    ev.initiator.attachments = &attachments[1];
    ev.initiator.attachments_len = 1;
    ev.initiator.project_id = S("p-1");
    ev.initiator.app_credential_id = S("ac-31");
    ev.attachments = attachments;
    ev.attachments_len = 2;
    ev.request_path = S("/v2.1/servers");
    CHECK_STATUS(auditbuf_record_cadf(p, &ev), AUDITBUF_OK);

    /* Nothing optional: typeURI, eventType, id and eventTime are filled in. */
    auditbuf_cadf_event bare = minimal();
    CHECK_STATUS(auditbuf_record_cadf(p, &bare), AUDITBUF_OK);

    /* Refused, each with its status, named, and counted. */
    auditbuf_cadf_event bad = minimal();
    bad.initiator.name = S("\xc3\x28");
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_FIELD);
    CHECK(last_error_has("initiator.name"));
    bad = minimal();
    bad.outcome = S("ok");
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_FIELD);
    CHECK(last_error_has("outcome"));
    bad = minimal();
    bad.action = S(NULL);
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_MISSING_FIELD);
    bad = minimal();
    bad.target.id = S("");
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_MISSING_FIELD);
    CHECK(last_error_has("target.id"));
    bad = minimal();
    bad.attachments = attachments;
    bad.attachments_len = 1;
    attachments[0].content = S("{\"a\":1,\"a\":2}");
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_JSON);
    /* Bad arguments are not events: not counted. */
    bad = minimal();
    bad.request_path.ptr = NULL;
    bad.request_path.len = 3;
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("requestPath"));
    /* A NULL list with a count, as a NULL view with a length: the struct's fields disagree. */
    bad = minimal();
    bad.observer.addresses_len = 2;
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("observer.addresses"));
    bad = minimal();
    bad.attachments_len = 1;
    CHECK_STATUS(auditbuf_record_cadf(p, &bad), AUDITBUF_INVALID_PARAMETER);
    CHECK(last_error_has("attachments"));
    CHECK_STATUS(auditbuf_record_cadf(p, NULL), AUDITBUF_NULL_PARAMETER);
    CHECK_STATUS(auditbuf_record_cadf(NULL, &ev), AUDITBUF_NULL_PARAMETER);

    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    check_invariant(&r.stats);
    CHECK_EQ_U64(r.stats.delivered, 2);
    CHECK_EQ_U64(r.stats.rejected_invalid_field, 2);
    CHECK_EQ_U64(r.stats.rejected_missing_field, 2);
    CHECK_EQ_U64(r.stats.rejected_invalid_json, 1);
    CHECK(collector_count(&c) == 2);
    const char *full = c.events[0];
    CHECK(strncmp(full,
                  "{\"typeURI\":\"http://schemas.dmtf.org/cloud/audit/1.0/event\","
                  "\"id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","
                  "\"eventTime\":\"2026-11-23T10:15:30.123456+00:00\",\"eventType\":\"activity\","
                  "\"action\":\"create\",\"outcome\":\"success\","
                  "\"reason\":{\"reasonType\":\"HTTP\",\"reasonCode\":\"409\"},"
                  "\"initiator\":{\"typeURI\":\"service/security/account/user\",\"name\":\"ada\","
                  "\"id\":\"u-1\",\"addresses\":[{\"url\":\"https://h0.example/v3\",\"name\":\"public\"},",
                  300) == 0);
    check_has(full, "{\"url\":\"https://h9.example/v3\"}],\"host\":{\"address\":\"10.0.0.7\"},"
                    "\"attachments\":[{\"typeURI\":\"xs:string\",\"content\":\"quota \\\"exceeded\\\"\"}],"
                    "\"project_id\":\"p-1\",\"app_credential_id\":\"ac-31\"}");
    check_has(full, "\"attachments\":[{\"name\":\"payload\",\"typeURI\":\"mime:application/json\","
                    "\"content\":{\"flavor\": \"m1.small\"}},");
    check_has(full, "\"requestPath\":\"/v2.1/servers\"}");
    const char *generated = c.events[1];
    /* "id":"xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx","eventTime":"YYYY-MM-DDTHH:MM:SS.ffffff+00:00" */
    const char *id = strstr(generated, "\"id\":\"") + 6;
    CHECK(id[8] == '-' && id[13] == '-' && id[14] == '4' && id[18] == '-' && id[23] == '-');
    CHECK(strchr("89ab", id[19]) != NULL && id[36] == '"');
    const char *time = strstr(generated, "\"eventTime\":\"") + 13;
    CHECK(time[10] == 'T' && time[19] == '.' && strncmp(time + 26, "+00:00\"", 7) == 0);
    auditbuf_pipeline_free(p);
    collector_free(&c);

    /* The "rabbitmq" sink type: checked when the pipeline is made, connected on first use
     * (nothing listens on port 1; the pipeline starts all the same). */
    const char *doc = "{\"sink\":{\"type\":\"rabbitmq\",\"url\":\"amqp://guest:hunter22@127.0.0.1:1/%2f\","
                      "\"queue\":\"audit\",\"connect_timeout_ms\":200}}";
    auditbuf_pipeline *rabbit = NULL;
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &rabbit), AUDITBUF_OK);
    r = new_report();
    CHECK_STATUS(auditbuf_close(rabbit, 1000, &r), AUDITBUF_OK);
    auditbuf_pipeline_free(rabbit);
    doc = "{\"sink\":{\"type\":\"rabbitmq\",\"url\":\"http://guest:hunter22@127.0.0.1/\",\"queue\":\"audit\"}}";
    CHECK_STATUS(auditbuf_pipeline_new(doc, strlen(doc), &rabbit), AUDITBUF_CONFIG);
    CHECK(last_error_has("sink.url"));
    CHECK(!last_error_has("hunter22"));
}

/* Refuses `ev` with `want`, in a message that says `says`. */
static void refused(auditbuf_pipeline *p, const auditbuf_cadf_event *ev, auditbuf_status want,
                    const char *says) {
    CHECK_STATUS(auditbuf_record_cadf(p, ev), want);
    if (!last_error_has(says)) {
        fprintf(stderr, "last error \"%s\"\nlacks \"%s\"\n", last_error(), says);
        exit(1);
    }
}

/* An error about an element of a list names the list and the element's index, whether the
 * C ABI found it (a NULL view with a length, text that is not UTF-8) or the core did (a
 * required field empty, U+0000, content that is not JSON); past the 8 elements converted in
 * place too, and an event's own attachments apart from a resource's. */
void test_cadf_list_elements(void) {
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{}");
    auditbuf_cadf_address addresses[10];
    for (int i = 0; i < 10; i++) {
        addresses[i].url = S("https://h.example/v3");
        addresses[i].name = S(NULL);
    }
    auditbuf_cadf_attachment attachments[3];
    memset(attachments, 0, sizeof attachments);
    for (int i = 0; i < 3; i++) {
        attachments[i].type_uri = S("mime:application/json");
        attachments[i].content = S("{\"a\":[1]}");
        attachments[i].content_is_json = 1;
    }
    auditbuf_cadf_event ev = minimal();
    ev.initiator.addresses = addresses;
    ev.initiator.addresses_len = 3;
    ev.target.addresses = addresses;
    ev.target.addresses_len = 10;
    ev.observer.attachments = attachments;
    ev.observer.attachments_len = 3;
    ev.attachments = attachments;
    ev.attachments_len = 3;
    CHECK_STATUS(auditbuf_record_cadf(p, &ev), AUDITBUF_OK);

    /* Found by the C ABI. */
    addresses[1].name = S("\xc3\x28");
    refused(p, &ev, AUDITBUF_INVALID_FIELD, "field initiator.addresses[1].name: is not valid UTF-8");
    addresses[1].name = S(NULL);
    attachments[2].type_uri.ptr = NULL;
    attachments[2].type_uri.len = 4;
    refused(p, &ev, AUDITBUF_INVALID_PARAMETER, "observer.attachments[2].typeURI: ptr is NULL");
    attachments[2].type_uri = S("mime:application/json");

    /* Found by the core. */
    addresses[2].url = S(NULL);
    refused(p, &ev, AUDITBUF_MISSING_FIELD, "required field initiator.addresses[2].url is empty");
    ev.initiator.addresses_len = 2;
    refused(p, &ev, AUDITBUF_MISSING_FIELD, "required field target.addresses[2].url is empty");
    addresses[2].url = S("https://h.example/v3");
    addresses[9].url = S("");
    refused(p, &ev, AUDITBUF_MISSING_FIELD, "required field target.addresses[9].url is empty");
    addresses[9].url = S("https://h.example/v3");
    static const uint8_t nul[] = {'a', 0, 'b'};
    addresses[8].name.ptr = nul;
    addresses[8].name.len = sizeof nul;
    refused(p, &ev, AUDITBUF_INVALID_FIELD, "field target.addresses[8].name: contains U+0000");
    addresses[8].name = S(NULL);
    attachments[1].content = S("[1],[2]");
    refused(p, &ev, AUDITBUF_INVALID_JSON,
            "field observer.attachments[1].content: not valid JSON at byte 3");
    ev.observer.attachments_len = 1;
    refused(p, &ev, AUDITBUF_INVALID_JSON, "field attachments[1].content: not valid JSON");
    /* Nesting the event could take on its own (123 levels below its 3), but not inside a
     * resource's attachment, one level deeper. */
    char deep[2 * 123 + 1];
    memset(deep, '[', 123);
    memset(deep + 123, ']', 123);
    deep[246] = 0;
    attachments[1].content = S("1");
    attachments[2].content = S(deep);
    CHECK_STATUS(auditbuf_record_cadf(p, &ev), AUDITBUF_OK);
    ev.observer.attachments_len = 3;
    refused(p, &ev, AUDITBUF_INVALID_JSON, "field observer.attachments[2].content: not valid JSON");
    CHECK(last_error_has("nesting deeper"));

    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 5000, &r), AUDITBUF_OK);
    check_invariant(&r.stats);
    CHECK_EQ_U64(r.stats.recorded, 2);
    CHECK_EQ_U64(r.stats.delivered, 2);
    CHECK_EQ_U64(r.stats.rejected_invalid_field, 2);
    CHECK_EQ_U64(r.stats.rejected_missing_field, 3);
    CHECK_EQ_U64(r.stats.rejected_invalid_json, 3);
    CHECK(collector_count(&c) == 2);
    auditbuf_pipeline_free(p);
    collector_free(&c);
}
