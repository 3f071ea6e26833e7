/* The shared vectors in testdata/events (see its README): the bytes the sink gets from the
 * C ABI are exactly those Rust produces, for record_json, record_event and record_flat. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>

#include "check.h"

static char *read_file(const char *dir, const char *name, const char *ext, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    CHECK(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* A typed vector: a flat JSON object of strings, integers and booleans. Strings are
 * unescaped into `text`; fields point into it. */
typedef struct typed {
    char *keys[32];
    char *values[32];
    size_t lens[32];
    int kinds[32]; /* 's' string, 'n' number, 'b' boolean */
    int n;
    char text[8192];
} typed;

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

static const char *skip_ws(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* Parses a JSON string at `s` (after the quote) into `*out`; returns the end. */
static const char *parse_string(const char *s, char **out, size_t *len, char **text) {
    char *start = *text, *o = *text;
    while (*s != '"') {
        CHECK(*s);
        if (*s != '\\') { *o++ = *s++; continue; }
        s++;
        switch (*s++) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[]){s[0], s[1], s[2], s[3], 0}, NULL, 16);
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[]){s[2], s[3], s[4], s[5], 0}, NULL, 16);
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            break;
        }
        default: *o++ = s[-1]; break; /* \" \\ \/ */
        }
    }
    *o++ = 0;
    *out = start;
    *len = (size_t)(o - start - 1);
    *text = o;
    return s + 1;
}

static void parse_typed(const char *json, typed *t) {
    memset(t, 0, sizeof *t);
    char *text = t->text;
    const char *s = skip_ws(json);
    CHECK(*s == '{');
    s = skip_ws(s + 1);
    while (*s == '"') {
        int i = t->n++;
        CHECK(i < 32);
        size_t klen;
        s = parse_string(s + 1, &t->keys[i], &klen, &text);
        s = skip_ws(s);
        CHECK(*s == ':');
        s = skip_ws(s + 1);
        if (*s == '"') {
            t->kinds[i] = 's';
            s = parse_string(s + 1, &t->values[i], &t->lens[i], &text);
        } else {
            const char *end = s;
            while (*end && *end != ',' && *end != '}' && !isspace((unsigned char)*end)) end++;
            t->kinds[i] = (*s == 't' || *s == 'f') ? 'b' : 'n';
            t->values[i] = text;
            memcpy(text, s, (size_t)(end - s));
            text[end - s] = 0;
            t->lens[i] = (size_t)(end - s);
            text += end - s + 1;
            s = end;
        }
        s = skip_ws(s);
        if (*s == ',') s = skip_ws(s + 1);
    }
    CHECK(*s == '}');
}

static const char *FIELDS[AUDITBUF_FLAT_STRINGS] = {
    "version",       "event_type",      "event_timestamp",   "event_category", "event_action",
    "event_outcome", "correlation_id",  "actor_type",        "actor_id",       "actor_ip",
    "resource_type", "resource_id",     "parent_event_id",   "parent_event_date",
    "namespace",     "cluster_id",      "severity",          "error_code",     "error_message",
    "event_data_json"};

static int find(const typed *t, const char *key) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0) return i;
    return -1;
}

/* The vector as an auditbuf_event. */
static auditbuf_event to_event(const typed *t) {
    auditbuf_event ev;
    memset(&ev, 0, sizeof ev);
    auditbuf_bytes *views[AUDITBUF_FLAT_STRINGS] = {
        &ev.version,         &ev.event_type,    &ev.event_timestamp, &ev.event_category,
        &ev.event_action,    &ev.event_outcome, &ev.correlation_id,  &ev.actor_type,
        &ev.actor_id,        &ev.actor_ip,      &ev.resource_type,   &ev.resource_id,
        &ev.parent_event_id, &ev.parent_event_date, &ev.namespace_,  &ev.cluster_id,
        &ev.severity,        &ev.error_code,    &ev.error_message,   &ev.event_data};
    for (int f = 0; f < AUDITBUF_FLAT_STRINGS; f++) {
        int i = find(t, FIELDS[f]);
        if (i >= 0) *views[f] = (auditbuf_bytes){(const uint8_t *)t->values[i], t->lens[i]};
    }
    int i;
    if ((i = find(t, "duration_ms")) >= 0) {
        ev.has_duration_ms = 1;
        ev.duration_ms = strtoull(t->values[i], NULL, 10);
    }
    if ((i = find(t, "retention_days")) >= 0) {
        ev.has_retention_days = 1;
        ev.retention_days = (uint32_t)strtoul(t->values[i], NULL, 10);
    }
    if ((i = find(t, "is_sensitive")) >= 0) {
        ev.has_is_sensitive = 1;
        ev.is_sensitive = t->values[i][0] == 't';
    }
    return ev;
}

/* The vector as a flat event, its strings copied into `buf` in reverse field order (so
 * spans are not simply increasing). */
static auditbuf_flat_event to_flat(const typed *t, char *buf, size_t *len) {
    auditbuf_flat_event fl;
    memset(&fl, 0, sizeof fl);
    fl.version = AUDITBUF_FLAT_VERSION;
    size_t at = 0;
    for (int f = AUDITBUF_FLAT_STRINGS - 1; f >= 0; f--) {
        int i = find(t, FIELDS[f]);
        if (i < 0) continue;
        fl.present |= 1u << f;
        memcpy(buf + at, t->values[i], t->lens[i]);
        fl.spans[f] = (auditbuf_span){(uint32_t)at, (uint32_t)t->lens[i]};
        at += t->lens[i];
    }
    auditbuf_event ev = to_event(t);
    if (ev.has_duration_ms) fl.present |= 1u << AUDITBUF_FIELD_DURATION_MS;
    if (ev.has_retention_days) fl.present |= 1u << AUDITBUF_FIELD_RETENTION_DAYS;
    if (ev.has_is_sensitive) fl.present |= 1u << AUDITBUF_FIELD_IS_SENSITIVE;
    fl.duration_ms = ev.duration_ms;
    fl.retention_days = ev.retention_days;
    fl.is_sensitive = ev.is_sensitive;
    *len = at;
    return fl;
}

/* `actual` equals `expected`, where "<NOW>" in `expected` stands for a 24-byte timestamp. */
static int matches_wire(const char *expected, size_t elen, const char *actual, size_t alen) {
    const char *now = memmem(expected, elen, "<NOW>", 5);
    if (!now) return elen == alen && memcmp(expected, actual, elen) == 0;
    size_t before = (size_t)(now - expected), after = elen - before - 5;
    if (alen != before + 24 + after) return 0;
    if (memcmp(actual, expected, before) || memcmp(actual + before + 24, now + 5, after)) return 0;
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (int i = 0; i < 24; i++) {
        char c = actual[before + (size_t)i];
        if (shape[i] == 'd' ? !isdigit((unsigned char)c) : c != shape[i]) return 0;
    }
    return 1;
}

static auditbuf_status want_status(const char *reason) {
    if (!strncmp(reason, "invalid_json", 12)) return AUDITBUF_INVALID_JSON;
    if (!strncmp(reason, "invalid_utf8", 12)) return AUDITBUF_INVALID_UTF8;
    if (!strncmp(reason, "not_an_object", 13)) return AUDITBUF_NOT_AN_OBJECT;
    if (!strncmp(reason, "missing_field", 13)) return AUDITBUF_MISSING_FIELD;
    if (!strncmp(reason, "invalid_field", 13)) return AUDITBUF_INVALID_FIELD;
    if (!strncmp(reason, "too_large", 9)) return AUDITBUF_TOO_LARGE;
    fprintf(stderr, "unknown reason %s\n", reason);
    exit(1);
}

static void check_vector(const char *dir, const char *name, int is_typed) {
    size_t in_len;
    char *input = read_file(dir, name, is_typed ? ".typed.json" : ".json", &in_len);
    CHECK(input);
    collector c;
    collector_init(&c);
    auditbuf_pipeline *p = pipeline_to(&c, "{}");
    auditbuf_status got[2];
    int tries = 1;
    static typed t;
    static char flat_buf[8192];
    if (is_typed) {
        parse_typed(input, &t);
        auditbuf_event ev = to_event(&t);
        size_t flat_len;
        auditbuf_flat_event fl = to_flat(&t, flat_buf, &flat_len);
        got[0] = auditbuf_record_event(p, &ev);
        got[1] = auditbuf_record_flat(p, &fl, (const uint8_t *)flat_buf, flat_len);
        tries = 2;
    } else {
        got[0] = auditbuf_record_json(p, (const uint8_t *)input, in_len);
    }
    auditbuf_report r = new_report();
    CHECK_STATUS(auditbuf_close(p, 10000, &r), AUDITBUF_OK);
    check_invariant(&r.stats);
    size_t wire_len;
    char *wire = read_file(dir, name, ".wire", &wire_len);
    if (wire) {
        CHECK(c.n == (size_t)tries);
        for (int i = 0; i < tries; i++) {
            CHECK_STATUS(got[i], AUDITBUF_OK);
            if (!matches_wire(wire, wire_len, c.events[i], c.lens[i])) {
                fprintf(stderr, "%s (%s):\nexpected %s\n  actual %s\n", name,
                        i ? "flat" : is_typed ? "event" : "json", wire, c.events[i]);
                exit(1);
            }
        }
        free(wire);
    } else {
        char *reason = read_file(dir, name, ".error", NULL);
        if (!reason) {
            fprintf(stderr, "%s: neither .wire nor .error\n", name);
            exit(1);
        }
        for (int i = 0; i < tries; i++) CHECK_STATUS(got[i], want_status(reason));
        CHECK(c.n == 0);
        CHECK_EQ_U64(r.stats.recorded, 0);
        free(reason);
    }
    auditbuf_pipeline_free(p);
    collector_free(&c);
    free(input);
}

void test_vectors(void) {
    const char *dir = getenv("AUDITBUF_VECTORS");
    if (!dir) dir = "testdata/events";
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open %s (set AUDITBUF_VECTORS)\n", dir);
        exit(1);
    }
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d)) != NULL) {
        char name[256];
        size_t n = strlen(e->d_name);
        if (n > 11 && !strcmp(e->d_name + n - 11, ".typed.json")) {
            snprintf(name, sizeof name, "%.*s", (int)(n - 11), e->d_name);
            check_vector(dir, name, 1);
        } else if (n > 5 && !strcmp(e->d_name + n - 5, ".json")) {
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
            check_vector(dir, name, 0);
        } else {
            continue;
        }
        checked++;
    }
    closedir(d);
    CHECK(checked >= 15);
    printf("vectors: %d checked\n", checked);
}
