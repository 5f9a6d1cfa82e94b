/*
 * The batch's global call: see include/chorus/global.h and
 * src/state/lua/78_global.lua.
 */
#include "chorus/global.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus/util.h"
#include "../worker/series_map.h"
#include "notes.h"

#define NUM 24 /* a formatted number */

typedef struct stream {
        char *key; /* "<topic>|<partition>|<series>", also the argument strings */
        size_t field_len;
        int64_t newest;
} stream_t;

typedef struct served {
        chorus_name_t horizon, series;
        int64_t bucket, issued_at, revision;
        int extreme;
} served_t;

typedef struct stale {
        chorus_name_t series;
        int64_t newest, deadline;
} stale_t;

typedef struct started {
        char fingerprint[sizeof(((chorus_alert_t *)0)->fingerprint)];
        int64_t event_time;
} started_t;

struct chorus_global {
        const chorus_config_t *cfg;
        chorus_series_map_t *index; /* stream key -> position in streams, plus 1 */
        stream_t *streams;
        size_t n_streams, streams_cap;
        range_t *ranges;
        size_t n_ranges, ranges_cap;
        served_t *served;
        size_t n_served, served_cap;
        started_t *started;
        size_t n_started, started_cap;
        stale_t *stale;
        size_t n_stale, stale_cap;
        chorus_series_map_t *stream_newest; /* across batches: for late records */
        char *reported; /* the partitions' state last reported, across batches */
        chorus_source_t anchor;
        int has_anchor;
};

chorus_global_t *chorus_global_new(const chorus_config_t *cfg) {
        chorus_global_t *g = calloc(1, sizeof(*g));

        if (!g || !(g->index = chorus_series_map_new()) ||
            !(g->stream_newest = chorus_series_map_new())) {
                if (g)
                        chorus_series_map_destroy(g->index);
                free(g);
                return NULL;
        }
        g->cfg = cfg;
        return g;
}

void chorus_global_reset(chorus_global_t *g) {
        for (size_t i = 0; i < g->n_streams; i++)
                free(g->streams[i].key);
        g->n_streams = g->n_ranges = g->n_served = g->n_started = g->n_stale = 0;
        g->has_anchor = 0;
        chorus_series_map_clear(g->index);
}

void chorus_global_destroy(chorus_global_t *g) {
        if (!g)
                return;
        chorus_global_reset(g);
        chorus_series_map_destroy(g->index);
        chorus_series_map_destroy(g->stream_newest);
        free(g->reported);
        free(g->stale);
        free(g->streams);
        free(g->ranges);
        free(g->served);
        free(g->started);
        free(g);
}

int chorus_global_note_record(chorus_global_t *g, const char *series, const chorus_source_t *src,
                              int64_t t) {
        char key[300 + CHORUS_NAME_MAX + 2];
        int64_t at;
        int w;

        w = snprintf(key, sizeof(key), "%s|%d|%s", src->topic, (int)src->partition, series);
        if (w < 0 || (size_t)w >= sizeof(key))
                return -1;
        if ((at = chorus_series_map_get(g->index, key)) > 0) {
                if (t > g->streams[at - 1].newest)
                        g->streams[at - 1].newest = t;
        } else {
                stream_t *s;

                if (notes_grow((void **)&g->streams, g->n_streams, &g->streams_cap, sizeof(*s)))
                        return -1;
                s = &g->streams[g->n_streams];
                if (!(s->key = strdup(key)))
                        return -1;
                if (chorus_series_map_raise(g->index, key, (int64_t)g->n_streams + 1)) {
                        free(s->key);
                        return -1;
                }
                s->field_len = (size_t)w - strlen(series) - 1;
                s->newest = t;
                g->n_streams++;
        }
        if (notes_add_range(&g->ranges, &g->n_ranges, &g->ranges_cap, src))
                return -1;
        g->anchor = *src;
        g->has_anchor = 1;
        return 0;
}

int chorus_global_note_forecast(chorus_global_t *g, const chorus_forecast_t *fc) {
        served_t *s;

        if (notes_grow((void **)&g->served, g->n_served, &g->served_cap, sizeof(*s)))
                return -1;
        s = &g->served[g->n_served++];
        snprintf(s->horizon, sizeof(s->horizon), "%s", fc->horizon);
        snprintf(s->series, sizeof(s->series), "%s", fc->series);
        s->bucket = fc->target_time;
        s->issued_at = fc->issued_at;
        s->revision = fc->revision;
        s->extreme = fc->has_z_score && fabs(fc->z_score) > g->cfg->z_max;
        return 0;
}

int chorus_global_note_alert(chorus_global_t *g, const chorus_alert_t *a) {
        started_t *s;

        if (strcmp(a->state, "firing") || strcmp(a->severity, "critical") ||
            !strcmp(a->type, "ALERT_STORM"))
                return 0;
        if (notes_grow((void **)&g->started, g->n_started, &g->started_cap, sizeof(*s)))
                return -1;
        s = &g->started[g->n_started++];
        snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", a->fingerprint);
        s->event_time = a->event_time;
        return 0;
}

int chorus_global_note_stale(chorus_global_t *g, const char *series, int64_t newest,
                             int64_t deadline) {
        stale_t *s;

        if (notes_grow((void **)&g->stale, g->n_stale, &g->stale_cap, sizeof(*s)))
                return -1;
        s = &g->stale[g->n_stale++];
        snprintf(s->series, sizeof(s->series), "%s", series);
        s->newest = newest;
        s->deadline = deadline;
        return 0;
}

int chorus_global_late(chorus_global_t *g, const char *series, const chorus_source_t *src,
                       int64_t t) {
        char key[300 + CHORUS_NAME_MAX + 2];
        int64_t newest;

        snprintf(key, sizeof(key), "%s|%d|%s", src->topic, (int)src->partition, series);
        newest = chorus_series_map_get(g->stream_newest, key);
        chorus_series_map_raise(g->stream_newest, key, t);
        return newest >= 0 && t < newest;
}

int chorus_global_partitions_changed(chorus_global_t *g, const chorus_global_partition_t *parts,
                                     size_t n_parts) {
        size_t cap = 1 + n_parts * (300 + 3 * NUM), len = 0;
        char *sig = malloc(cap);
        int changed;

        if (!sig)
                return 1;
        sig[0] = '\0';
        for (size_t i = 0; i < n_parts; i++)
                len += (size_t)snprintf(sig + len, cap - len, "%s|%d|%" PRId64 "|%d|%" PRId64 ";",
                                        parts[i].topic, (int)parts[i].partition, parts[i].epoch,
                                        parts[i].at_end, parts[i].held_min);
        changed = !g->reported || strcmp(g->reported, sig);
        free(g->reported);
        g->reported = sig;
        return changed;
}

int chorus_global_has_anchor(const chorus_global_t *g) {
        return g->has_anchor;
}

chorus_source_t chorus_global_anchor(const chorus_global_t *g) {
        return g->anchor;
}

static int64_t wall_clock_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A growing argument list: pointers into owned strings. */
typedef struct args {
        const char **v;
        char **owned;
        size_t n, cap, n_owned, owned_cap;
} args_t;

static void add(args_t *a, const char *s) {
        if (notes_grow((void **)&a->v, a->n, &a->cap, sizeof(*a->v))) {
                fprintf(stderr, "chorus: out of memory queueing the global call\n");
                abort();
        }
        a->v[a->n++] = s;
}

static void addf(args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(args_t *a, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        char *s;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (!(s = strdup(buf)) ||
            notes_grow((void **)&a->owned, a->n_owned, &a->owned_cap, sizeof(*a->owned))) {
                fprintf(stderr, "chorus: out of memory queueing the global call\n");
                abort();
        }
        a->owned[a->n_owned++] = s;
        add(a, s);
}

static void adddouble(args_t *a, double d) {
        char buf[NUM];
        chorus_format_double(buf, sizeof(buf), d);
        addf(a, "%s", buf);
}

void chorus_global_queue(chorus_global_t *g, chorus_state_t *st, const char *batch_id,
                         const chorus_global_partition_t *parts, size_t n_parts,
                         const chorus_global_topic_t *topics, size_t n_topics) {
        const chorus_config_t *c = g->cfg;
        char base[CHORUS_BASE_KEY_MAX], *ranges;
        size_t len = 0, cap = 64;
        args_t a = {0};

        if (!(ranges = malloc(cap))) {
                fprintf(stderr, "chorus: out of memory queueing the global call\n");
                abort();
        }
        ranges[0] = '\0';
        for (size_t i = 0; i < g->n_ranges; i++) {
                const range_t *r = &g->ranges[i];
                const char *committed = "-";
                size_t need;

                for (size_t k = 0; k < n_parts; k++)
                        if (parts[k].partition == r->partition && !strcmp(parts[k].topic, r->topic))
                                committed = parts[k].committed;
                need = strlen(r->topic) + strlen(committed) + 3 * NUM + 8;
                if (len + need >= cap) {
                        char *p;
                        cap = 2 * (len + need);
                        if (!(p = realloc(ranges, cap))) {
                                fprintf(stderr, "chorus: out of memory queueing the global call\n");
                                abort();
                        }
                        ranges = p;
                }
                len += (size_t)snprintf(ranges + len, cap - len,
                                        "%s%s|%d:%" PRId64 ":%" PRId64 ":%s", i ? ";" : "",
                                        r->topic, (int)r->partition, r->lo, r->hi, committed);
        }
        chorus_state_base_key(st, base, sizeof(base), CHORUS_GLOBAL_SERIES);

        add(&a, "FCALL");
        add(&a, "chorus_global");
        add(&a, "1");
        add(&a, base);
        add(&a, batch_id);
        add(&a, ranges);
        if (g->has_anchor) {
                addf(&a, "%s|%d", g->anchor.topic, (int)g->anchor.partition);
                addf(&a, "%" PRId64, g->anchor.offset);
        } else {
                add(&a, "");
                add(&a, "");
        }
        adddouble(&a, c->z_max);
        adddouble(&a, c->alerts_extreme_pct);
        addf(&a, "%d", c->alerts_extreme_min);
        addf(&a, "%d", c->alerts_storm_count);
        addf(&a, "%lld", (long long)c->alerts_storm_window_s * 1000LL);
        /* DATA_STALE's wall clock, when configured: "" judges on the watermark. */
        if (c->alerts_stale_wall)
                addf(&a, "%" PRId64, wall_clock_ms());
        else
                add(&a, "");
        addf(&a, "%zu", n_topics);
        for (size_t i = 0; i < n_topics; i++) {
                add(&a, topics[i].topic);
                addf(&a, "%d", (int)topics[i].partitions);
        }
        addf(&a, "%zu", n_parts);
        for (size_t i = 0; i < n_parts; i++) {
                addf(&a, "%s|%d", parts[i].topic, (int)parts[i].partition);
                addf(&a, "%" PRId64, parts[i].epoch);
                add(&a, parts[i].at_end ? "1" : "0");
                if (parts[i].held_min >= 0)
                        addf(&a, "%" PRId64, parts[i].held_min);
                else
                        add(&a, "");
        }
        addf(&a, "%zu", g->n_streams);
        for (size_t i = 0; i < g->n_streams; i++) {
                stream_t *s = &g->streams[i];
                s->key[s->field_len] = '\0'; /* "<topic>|<partition>" then the series */
                add(&a, s->key);
                add(&a, s->key + s->field_len + 1);
                addf(&a, "%" PRId64, s->newest);
        }
        addf(&a, "%zu", g->n_served);
        for (size_t i = 0; i < g->n_served; i++) {
                const served_t *s = &g->served[i];
                add(&a, s->horizon);
                add(&a, s->series);
                addf(&a, "%" PRId64, s->bucket);
                addf(&a, "%" PRId64, s->issued_at);
                addf(&a, "%" PRId64, s->revision);
                add(&a, s->extreme ? "1" : "0");
        }
        addf(&a, "%zu", g->n_started);
        for (size_t i = 0; i < g->n_started; i++) {
                add(&a, g->started[i].fingerprint);
                addf(&a, "%" PRId64, g->started[i].event_time);
        }
        addf(&a, "%zu", g->n_stale);
        for (size_t i = 0; i < g->n_stale; i++) {
                add(&a, g->stale[i].series);
                addf(&a, "%" PRId64, g->stale[i].newest);
                addf(&a, "%" PRId64, g->stale[i].deadline);
        }
        chorus_state_add_command(st, (int)a.n, a.v);
        for (size_t i = 0; i < g->n_streams; i++) /* the map's keys stay whole */
                g->streams[i].key[g->streams[i].field_len] = '|';
        for (size_t i = 0; i < a.n_owned; i++)
                free(a.owned[i]);
        free(a.owned);
        free(a.v);
        free(ranges);
}
