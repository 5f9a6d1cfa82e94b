/*
 * Monitoring calls of a batch: see include/chorus/monitor.h and
 * src/state/lua/75_monitor.lua.
 */
#include "chorus/monitor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/util.h"
#include "../worker/series_map.h"
#include "notes.h"

#define NUM 24 /* a formatted number */

typedef struct served {
        chorus_name_t horizon;
        int64_t bucket, issued_at, revision;
        double value;
        char source[300 + 24]; /* "<topic>|<partition>|<offset>" of its prediction */
        char
            *weights; /* "m=w,..." of a complete, non-fallback forecast (WEIGHT_SHIFT), else NULL */
} served_t;

typedef struct series_note {
        chorus_name_t series;
        range_t *ranges;
        size_t n_ranges, ranges_cap;
        served_t *served;
        size_t n_served, served_cap;
        chorus_monitor_anchor_t anchor;
} series_note_t;

struct chorus_monitor {
        const chorus_config_t *cfg;
        char *models_spec;          /* the configured model lists, for DATA_MISSING */
        chorus_series_map_t *index; /* series -> position in notes, plus 1 */
        series_note_t *notes;
        size_t n_notes, notes_cap;
};

/* Appends "<horizon>=<model>,...;" to *buf (of *len bytes used, *cap allocated). */
static int spec_append(char **buf, size_t *len, size_t *cap, const char *horizon,
                       const chorus_name_t *models, size_t n) {
        size_t need = strlen(horizon) + 2 + n * (CHORUS_NAME_MAX + 1) + 1;

        if (*len + need > *cap) {
                size_t c = 2 * (*len + need);
                char *p = realloc(*buf, c);
                if (!p)
                        return -1;
                *buf = p;
                *cap = c;
        }
        *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s=", horizon);
        for (size_t i = 0; i < n; i++)
                *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s%s", i ? "," : "", models[i]);
        *len += (size_t)snprintf(*buf + *len, *cap - *len, ";");
        return 0;
}

/* "<horizon>=<model>,...;" per horizon with its own list, and "*=..." for
 * the list of every other horizon: the expected models of DATA_MISSING. */
static char *models_spec_new(const chorus_config_t *cfg) {
        size_t len = 0, cap = 64;
        char *buf = malloc(cap);

        if (!buf)
                return NULL;
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->n_horizon_confs; i++) {
                const chorus_horizon_conf_t *h = &cfg->horizon_confs[i];
                if (h->n_models && spec_append(&buf, &len, &cap, h->name,
                                               (const chorus_name_t *)h->models, h->n_models))
                        goto fail;
        }
        if (cfg->n_models &&
            spec_append(&buf, &len, &cap, "*", (const chorus_name_t *)cfg->models, cfg->n_models))
                goto fail;
        return buf;
fail:
        free(buf);
        return NULL;
}

chorus_monitor_t *chorus_monitor_new(const chorus_config_t *cfg) {
        chorus_monitor_t *m = calloc(1, sizeof(*m));

        if (!m || !(m->index = chorus_series_map_new()) ||
            !(m->models_spec = models_spec_new(cfg))) {
                if (m)
                        chorus_series_map_destroy(m->index);
                free(m);
                return NULL;
        }
        m->cfg = cfg;
        return m;
}

void chorus_monitor_reset(chorus_monitor_t *m) {
        for (size_t i = 0; i < m->n_notes; i++) {
                for (size_t k = 0; k < m->notes[i].n_served; k++)
                        free(m->notes[i].served[k].weights);
                free(m->notes[i].ranges);
                free(m->notes[i].served);
        }
        m->n_notes = 0;
        chorus_series_map_clear(m->index);
}

void chorus_monitor_destroy(chorus_monitor_t *m) {
        if (!m)
                return;
        chorus_monitor_reset(m);
        free(m->notes);
        chorus_series_map_destroy(m->index);
        free(m->models_spec);
        free(m);
}

static series_note_t *note_of(chorus_monitor_t *m, const char *series, int create) {
        int64_t at = chorus_series_map_get(m->index, series);
        series_note_t *n;

        if (at > 0)
                return &m->notes[at - 1];
        if (!create)
                return NULL;
        if (m->n_notes == m->notes_cap) {
                size_t cap = m->notes_cap ? 2 * m->notes_cap : 64;
                series_note_t *p = realloc(m->notes, cap * sizeof(*p));
                if (!p)
                        return NULL;
                m->notes = p;
                m->notes_cap = cap;
        }
        if (chorus_series_map_raise(m->index, series, (int64_t)m->n_notes + 1))
                return NULL;
        n = &m->notes[m->n_notes++];
        memset(n, 0, sizeof(*n));
        snprintf(n->series, sizeof(n->series), "%s", series);
        n->anchor.series = n->series;
        return n;
}

int chorus_monitor_note_record(chorus_monitor_t *m, const char *series,
                               const chorus_source_t *src) {
        series_note_t *n = note_of(m, series, 1);

        if (!n)
                return -1;
        n->anchor.topic = src->topic;
        n->anchor.partition = src->partition;
        n->anchor.offset = src->offset;
        return notes_add_range(&n->ranges, &n->n_ranges, &n->ranges_cap, src);
}

int chorus_monitor_note_forecast(chorus_monitor_t *m, const chorus_forecast_t *fc,
                                 const chorus_source_t *src) {
        series_note_t *n = note_of(m, fc->series, 0);
        served_t *s;

        if (!n) /* its prediction was not noted: nothing to anchor it to */
                return -1;
        if (notes_grow((void **)&n->served, n->n_served, &n->served_cap, sizeof(*n->served)))
                return -1;
        s = &n->served[n->n_served++];
        snprintf(s->horizon, sizeof(s->horizon), "%s", fc->horizon);
        s->bucket = fc->target_time;
        s->issued_at = fc->issued_at;
        s->revision = fc->revision;
        s->value = fc->value;
        s->weights = NULL;
        snprintf(s->source, sizeof(s->source), "%s|%d|%" PRId64, src->topic, (int)src->partition,
                 src->offset);
        if (fc->complete && fc->fallback == CHORUS_FALLBACK_NONE) {
                size_t cap = fc->n_present * (CHORUS_NAME_MAX + 2 + 24) + 1, len = 0;
                if (!(s->weights = malloc(cap))) {
                        n->n_served--;
                        return -1;
                }
                s->weights[0] = '\0';
                for (size_t i = 0; i < fc->n_present; i++) {
                        char w[NUM];
                        chorus_format_double(w, sizeof(w), fc->weight[i]);
                        len += (size_t)snprintf(s->weights + len, cap - len, "%s%s=%s",
                                                i ? "," : "", fc->present[i], w);
                }
        }
        return 0;
}

size_t chorus_monitor_n_series(const chorus_monitor_t *m) {
        return m->n_notes;
}

chorus_monitor_anchor_t chorus_monitor_anchor(const chorus_monitor_t *m, size_t i) {
        return m->notes[i].anchor;
}

#define FIXED_ARGS 30 /* FCALL, name, numkeys, base, then the 26 ARGV before the forecasts */

static void queue_one(chorus_monitor_t *m, chorus_state_t *st, const series_note_t *n,
                      const char *batch_id, int64_t epoch, const char *committed) {
        const chorus_config_t *c = m->cfg;
        size_t argc = FIXED_ARGS + 1 + 7 * n->n_served, len = 0, cap = 64;
        const char **argv = malloc(argc * sizeof(*argv));
        /* 19 numbers before the forecasts (the NUMF and format calls below), 4 per forecast. */
        char(*num)[NUM] = malloc((19 + 4 * n->n_served) * sizeof(*num));
        char base[CHORUS_BASE_KEY_MAX], anchor[300], *ranges = malloc(cap);
        size_t k = 0, j = 0;

        if (!argv || !num || !ranges) {
                fprintf(stderr, "chorus: out of memory queueing a monitor call\n");
                abort();
        }
        ranges[0] = '\0';
        for (size_t i = 0; i < n->n_ranges; i++) {
                const range_t *r = &n->ranges[i];
                size_t need = strlen(r->topic) + 3 * NUM + 4;
                int w;

                if (len + need >= cap) {
                        char *p;
                        cap = 2 * (len + need);
                        if (!(p = realloc(ranges, cap))) {
                                fprintf(stderr, "chorus: out of memory queueing a monitor call\n");
                                abort();
                        }
                        ranges = p;
                }
                w = snprintf(ranges + len, cap - len, "%s%s|%d:%" PRId64 ":%" PRId64, i ? ";" : "",
                             r->topic, (int)r->partition, r->lo, r->hi);
                len += (size_t)w;
        }
        chorus_state_base_key(st, base, sizeof(base), n->series);
        snprintf(anchor, sizeof(anchor), "%s|%d", n->anchor.topic, (int)n->anchor.partition);

#define NUMF(fmt, v) (snprintf(num[j], NUM, fmt, v), num[j++])
        argv[k++] = "FCALL";
        argv[k++] = "chorus_monitor";
        argv[k++] = "1";
        argv[k++] = base;
        argv[k++] = n->series;
        argv[k++] = anchor;
        argv[k++] = NUMF("%" PRId64, n->anchor.offset);
        argv[k++] = batch_id;
        argv[k++] = NUMF("%" PRId64, epoch);
        argv[k++] = committed;
        argv[k++] = ranges;
        argv[k++] = c->alerts_baseline_mape;
        chorus_format_double(num[j], NUM, c->alerts_mape_pp);
        argv[k++] = num[j++];
        argv[k++] = NUMF("%d", c->alerts_mape_days);
        chorus_format_double(num[j], NUM, c->alerts_drift_pp);
        argv[k++] = num[j++];
        argv[k++] = NUMF("%d", c->alerts_drift_days);
        argv[k++] = NUMF("%d", c->alerts_drift_min_targets);
        argv[k++] = NUMF("%d", c->alerts_auto_from_days);
        argv[k++] = NUMF("%d", c->alerts_auto_to_days);
        argv[k++] = NUMF("%d", c->alerts_auto_min_days);
        argv[k++] = chorus_state_validation(st);
        chorus_format_double(num[j], NUM, c->alerts_overfit_critical);
        argv[k++] = num[j++];
        chorus_format_double(num[j], NUM, c->alerts_missing_pct);
        argv[k++] = num[j++];
        argv[k++] = m->models_spec;
        chorus_format_double(num[j], NUM, c->alerts_shift_max);
        argv[k++] = num[j++];
        argv[k++] = NUMF("%d", c->alerts_shift_days);
        chorus_format_double(num[j], NUM, c->alerts_stale_factor);
        argv[k++] = num[j++];
        argv[k++] = NUMF("%lld", (long long)c->alerts_stale_min_hours * 3600000LL);
        argv[k++] = NUMF("%lld", (long long)c->alerts_stale_lookback_days * 86400000LL);
        argv[k++] = NUMF("%lld", (long long)c->retention_days * 86400000LL);
        argv[k++] = NUMF("%zu", n->n_served);
        for (size_t i = 0; i < n->n_served; i++) {
                const served_t *s = &n->served[i];
                argv[k++] = s->horizon;
                argv[k++] = NUMF("%" PRId64, s->bucket);
                argv[k++] = NUMF("%" PRId64, s->issued_at);
                argv[k++] = NUMF("%" PRId64, s->revision);
                chorus_format_double(num[j], NUM, s->value);
                argv[k++] = num[j++];
                argv[k++] = s->weights ? s->weights : "";
                argv[k++] = s->source;
        }
#undef NUMF
        chorus_state_add_command(st, (int)k, argv);
        free(ranges);
        free(num);
        free(argv);
}

void chorus_monitor_queue(chorus_monitor_t *m, chorus_state_t *st, const char *batch_id,
                          void (*source)(void *ctx, const char *topic, int32_t partition,
                                         int64_t *epoch, const char **committed_batches),
                          void *ctx) {
        for (size_t i = 0; i < m->n_notes; i++) {
                const series_note_t *n = &m->notes[i];
                int64_t epoch = 0;
                const char *committed = "-";

                source(ctx, n->anchor.topic, n->anchor.partition, &epoch, &committed);
                queue_one(m, st, n, batch_id, epoch, committed);
        }
}

chorus_err_t chorus_monitor_reply_check(const redisReply *r, int *fenced) {
        *fenced = 0;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING)
                return CHORUS_ERR_STATE;
        if (!strcmp(r->element[0]->str, "fenced")) {
                *fenced = 1;
                return CHORUS_OK;
        }
        if (strcmp(r->element[0]->str, "ok"))
                return CHORUS_ERR_STATE;
        for (size_t i = 1; i < r->elements; i++)
                if (r->element[i]->type != REDIS_REPLY_ARRAY)
                        return CHORUS_ERR_STATE;
        return CHORUS_OK;
}

size_t chorus_monitor_reply_outputs(const redisReply *r) {
        return r->elements - 1;
}

chorus_monitor_output_t chorus_monitor_reply_kind(const redisReply *r, size_t i) {
        const redisReply *a = r->element[i + 1];

        if (a->elements > 0 && a->element[0]->type == REDIS_REPLY_STRING) {
                if (!strcmp(a->element[0]->str, "window"))
                        return CHORUS_MONITOR_WINDOW;
                if (!strcmp(a->element[0]->str, "stale"))
                        return CHORUS_MONITOR_STALE;
        }
        return CHORUS_MONITOR_ALERT;
}

/* Copies string @p e into @p dst of @p cap bytes; -1 if not a string or too long. */
static int copy_str(char *dst, size_t cap, const redisReply *e) {
        if (e->type != REDIS_REPLY_STRING || e->len >= cap || memchr(e->str, '\0', e->len))
                return -1;
        memcpy(dst, e->str, e->len);
        dst[e->len] = '\0';
        return 0;
}

static int copy_opt(char *dst, size_t cap, int *has, const redisReply *e) {
        if (copy_str(dst, cap, e))
                return -1;
        *has = dst[0] != '\0';
        return 0;
}

static int parse_num(const redisReply *e, double *d, int64_t *l) {
        char buf[40], *end;

        if (copy_str(buf, sizeof(buf), e) || !buf[0])
                return -1;
        if (d)
                *d = strtod(buf, &end);
        else
                *l = strtoll(buf, &end, 10);
        return *end ? -1 : 0;
}

chorus_err_t chorus_monitor_reply_alert(const redisReply *r, size_t i, chorus_alert_t *out) {
        const redisReply *a = r->element[i + 1];
        redisReply *const *f = a->element;
        size_t nd;

        memset(out, 0, sizeof(*out));
        if (a->type != REDIS_REPLY_ARRAY || a->elements < 12 || (a->elements - 12) % 2)
                return CHORUS_ERR_STATE;
        nd = (a->elements - 12) / 2;
        if (nd > CHORUS_ALERT_DETAILS_MAX ||
            copy_str(out->fingerprint, sizeof(out->fingerprint), f[0]) ||
            copy_str(out->type, sizeof(out->type), f[1]) ||
            copy_str(out->severity, sizeof(out->severity), f[2]) ||
            copy_str(out->state, sizeof(out->state), f[3]) ||
            copy_opt(out->series, sizeof(out->series), &out->has_series, f[4]) ||
            copy_opt(out->horizon, sizeof(out->horizon), &out->has_horizon, f[5]) ||
            copy_opt(out->model_id, sizeof(out->model_id), &out->has_model_id, f[6]) ||
            copy_opt(out->indicator, sizeof(out->indicator), &out->has_indicator, f[7]) ||
            parse_num(f[8], &out->value, NULL) || parse_num(f[9], &out->threshold, NULL) ||
            parse_num(f[10], NULL, &out->event_time) ||
            copy_str(out->message, sizeof(out->message), f[11]))
                return CHORUS_ERR_STATE;
        out->n_details = nd;
        for (size_t k = 0; k < nd; k++)
                if (copy_str(out->detail_key[k], sizeof(out->detail_key[k]), f[12 + 2 * k]) ||
                    copy_str(out->detail_value[k], sizeof(out->detail_value[k]), f[13 + 2 * k]))
                        return CHORUS_ERR_STATE;
        return CHORUS_OK;
}

chorus_err_t chorus_monitor_reply_window(const redisReply *r, size_t i,
                                         chorus_validation_window_t *out) {
        const redisReply *a = r->element[i + 1];
        redisReply *const *f = a->element;
        char flag[4];
        size_t nm;

        memset(out, 0, sizeof(*out));
        if (a->type != REDIS_REPLY_ARRAY || a->elements < 13 || (a->elements - 13) % 2)
                return CHORUS_ERR_STATE;
        nm = (a->elements - 13) / 2;
        if (nm > CHORUS_MAX_MODELS || copy_str(out->series, sizeof(out->series), f[1]) ||
            copy_str(out->horizon, sizeof(out->horizon), f[2]) ||
            copy_str(out->profile, sizeof(out->profile), f[3]) ||
            parse_num(f[4], NULL, &out->window_id) || parse_num(f[5], NULL, &out->window_start) ||
            parse_num(f[6], NULL, &out->window_end) || parse_num(f[7], &out->val_rmse, NULL) ||
            parse_num(f[8], &out->test_rmse, NULL) ||
            parse_num(f[9], &out->equal_test_rmse, NULL) ||
            parse_num(f[11], NULL, &out->test_points) || copy_str(flag, sizeof(flag), f[12]))
                return CHORUS_ERR_STATE;
        if (f[10]->type == REDIS_REPLY_STRING && f[10]->len > 0) {
                if (parse_num(f[10], &out->divergence, NULL))
                        return CHORUS_ERR_STATE;
                out->has_divergence = 1;
        }
        out->is_overfitting = !strcmp(flag, "1");
        out->n_models = nm;
        out->model_count = (int)nm;
        for (size_t k = 0; k < nm; k++)
                if (copy_str(out->models[k], sizeof(out->models[k]), f[13 + 2 * k]) ||
                    parse_num(f[14 + 2 * k], &out->weight[k], NULL))
                        return CHORUS_ERR_STATE;
        return CHORUS_OK;
}

chorus_err_t chorus_monitor_reply_stale(const redisReply *r, size_t i, int64_t *newest,
                                        int64_t *deadline) {
        const redisReply *a = r->element[i + 1];

        if (a->type != REDIS_REPLY_ARRAY || a->elements != 3 ||
            parse_num(a->element[1], NULL, newest) || parse_num(a->element[2], NULL, deadline))
                return CHORUS_ERR_STATE;
        return CHORUS_OK;
}
