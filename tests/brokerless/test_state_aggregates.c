/*
 * Broker-less tests of the window aggregates kept by the state functions
 * (src/state/lua/, issue #4), against a real redis-server child.
 *
 * The functions are driven directly (FCALL, no Kafka, no hold) with the same
 * records in several arrival orders: in order, lightly shuffled and fully
 * shuffled, with revised predictions, revised and late actuals, zero
 * actuals, gaps and a window sliding over ~100 days. The checks:
 *  (a) every "applied" reply equals, bit for bit, the aggregates built in C
 *      (chorus_score_agg_build, chorus_actual_agg_build: exact sums) from a
 *      plain model of the data as of the reply's issued_at;
 *  (b) two arrival orders of the same records give byte-identical replies
 *      to the same later queries, and identical read-only window stats;
 *  (c) chorus_debug_check (cursor aggregate == scan of its window, exact
 *      pending sets) holds every few calls (a wrong aggregate stays wrong,
 *      so a sparse check still catches it), retention trimming included.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "chorus/embedded.h"
#include "chorus/ensemble.h"
#include "chorus/forecast.h"
#include "chorus/log.h"
#include "chorus/redis_server.h"
#include "chorus/state.h"

#define HOUR INT64_C(3600000)
#define DAY  (24 * HOUR)
#define T0   INT64_C(1704067200000)
#define RES  (6 * HOUR)
#define WIN  (30 * DAY)
#define NB   400 /* buckets: 100 days of 6 h */
#define NH   2
#define NM   3

static chorus_redis_server_t redis;
static redisContext *rc;

static const char *const horizons[NH] = {"1d", "2d"};
static const char *const models[NM] = {"arima", "gb", "lstm"};

static void setup(void) {
        char errstr[512];
        redisReply *r;

        chorus_log_level = CHORUS_LOG_ERROR;
        cr_assert_eq(chorus_redis_server_start(&redis, errstr, sizeof(errstr)), 0, "%s", errstr);
        rc = redisConnect("127.0.0.1", redis.port);
        cr_assert(rc && !rc->err, "connect: %s", rc ? rc->errstr : "?");
        r = redisCommand(rc, "FUNCTION LOAD REPLACE %s", chorus_embedded_get("chorus.lua"));
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "FUNCTION LOAD: %s", r ? r->str : "?");
        freeReplyObject(r);
}

static void teardown(void) {
        if (rc)
                redisFree(rc);
        chorus_redis_server_stop(&redis);
}

TestSuite(state_aggregates, .init = setup, .fini = teardown, .timeout = 300);

/* ------------------------------------------------------------------ */
/* Records and a plain model of the state                              */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static double unif(void) {
        return (double)(rnd() >> 11) / 9007199254740992.0;
}

typedef struct rec {
        int is_pred, h, m, k; /* k: bucket index */
        int64_t t;            /* observed_at or issued_at */
        double value;
        double order_key;
        int id;
} rec_t;

typedef struct dataset {
        rec_t *recs;
        size_t n;
} dataset_t;

/* Actuals: a random walk per bucket, 1-3 versions observed up to 36 h after
 * the bucket starts (revisions and late data), ~8 % gaps, ~2 % zeros, a few
 * exact duplicates. Predictions: per horizon and model, ~90 % of buckets,
 * 1-2 versions issued from 48 h before to 6 h after the bucket starts. */
static dataset_t make_dataset(uint64_t seed) {
        dataset_t d = {calloc(NB * 16, sizeof(rec_t)), 0};
        double level = 100.0;

        rng_state = seed;
        for (int k = 0; k < NB; k++) {
                int64_t b = T0 + k * RES;
                int versions = 1 + (int)(rnd() % 3);
                int64_t used[4] = {0};

                level += unif() - 0.5;
                if (unif() < 0.08)
                        versions = 0;
                for (int v = 0; v < versions; v++) {
                        rec_t *r = &d.recs[d.n++];
                        int64_t off;
                        int clash;

                        do { /* distinct observed_at per bucket: no ties */
                                off = (int64_t)(rnd() % (36 * 60)) * 60000;
                                clash = 0;
                                for (int j = 0; j < v; j++)
                                        clash |= used[j] == off;
                        } while (clash);
                        used[v] = off;
                        r->is_pred = 0;
                        r->k = k;
                        r->t = b + off;
                        r->value = unif() < 0.02 ? 0.0 : level + (unif() - 0.5) * 0.3;
                        if (v > 0 && unif() < 0.1) { /* an exact duplicate of the previous */
                                *r = r[-1];
                        }
                }
                for (int h = 0; h < NH; h++)
                        for (int m = 0; m < NM; m++) {
                                int nv = unif() < 0.9 ? 1 + (int)(rnd() % 2) : 0;
                                int64_t prev = -1;

                                for (int v = 0; v < nv; v++) {
                                        rec_t *r = &d.recs[d.n++];
                                        int64_t iss;

                                        do {
                                                iss = b - 48 * HOUR +
                                                      (int64_t)(rnd() % (54 * 60)) * 60000;
                                        } while (iss == prev);
                                        prev = iss;
                                        r->is_pred = 1;
                                        r->h = h;
                                        r->m = m;
                                        r->k = k;
                                        r->t = iss;
                                        r->value = level * (1.0 + (unif() - 0.5) * 0.02 * (m + 1));
                                }
                        }
        }
        for (size_t i = 0; i < d.n; i++)
                d.recs[i].id = (int)i;
        return d;
}

static int cmp_order(const void *a, const void *b) {
        const rec_t *x = a, *y = b;

        if (x->order_key != y->order_key)
                return x->order_key < y->order_key ? -1 : 1;
        return x->id - y->id;
}

/* Arrival order: event time plus a random delay of up to `jitter` ms, with
 * actuals arriving `lead` ms early; jitter < 0 shuffles completely. */
static void order_lead(dataset_t *d, uint64_t seed, double jitter, double lead) {
        rng_state = seed;
        for (size_t i = 0; i < d->n; i++) {
                rec_t *r = &d->recs[i];

                r->order_key =
                    jitter < 0 ? unif() : (double)r->t + unif() * jitter - (r->is_pred ? 0 : lead);
        }
        qsort(d->recs, d->n, sizeof(rec_t), cmp_order);
}

static void order(dataset_t *d, uint64_t seed, double jitter) {
        order_lead(d, seed, jitter, 0.0);
}

/* Every version of a bucket's actual: "as of I" the bucket's value is its
 * latest version observed at or before I (SPEC §1), not its winner. */
#define MAX_VERSIONS 8
typedef struct act_state {
        int n;
        int64_t obs[MAX_VERSIONS];
        double value[MAX_VERSIONS];
} act_state_t;

/* The index of the latest version observed at or before @p asof (-1: none;
 * INT64_MAX: the winner). */
static int version_as_of(const act_state_t *a, int64_t asof) {
        int best = -1;
        for (int i = 0; i < a->n; i++)
                if (a->obs[i] <= asof && (best < 0 || a->obs[i] > a->obs[best]))
                        best = i;
        return best;
}

static int64_t winner_obs(const act_state_t *a) {
        int64_t w = INT64_MIN;
        for (int i = 0; i < a->n; i++)
                if (a->obs[i] > w)
                        w = a->obs[i];
        return w;
}

typedef struct pred_state {
        int has;
        int64_t issued;
        double value;
} pred_state_t;

typedef struct model_state {
        act_state_t act[NB];
        pred_state_t pred[NH][NM][NB];
        int64_t *pubs[NH][NM]; /* every issued_at processed (for models_expected) */
        size_t n_pubs[NH][NM];
} model_state_t;

static model_state_t *model_new(void) {
        model_state_t *s = calloc(1, sizeof(*s));

        for (int h = 0; h < NH; h++)
                for (int m = 0; m < NM; m++)
                        s->pubs[h][m] = calloc(NB * 4, sizeof(int64_t));
        return s;
}

static void model_free(model_state_t *s) {
        for (int h = 0; h < NH; h++)
                for (int m = 0; m < NM; m++)
                        free(s->pubs[h][m]);
        free(s);
}

/* ------------------------------------------------------------------ */
/* Calling the functions                                               */
/* ------------------------------------------------------------------ */

typedef struct run {
        const char *base;
        int64_t retention;
        int check_every; /* chorus_debug_check after every n-th call (0: never) */
        int reference;   /* compare statuses and applied replies with the C model
                            (exact only without retention trimming) */
        model_state_t *ms;
        long calls, applied, checked;
        chorus_group_scratch_t scratch;
} run_t;

static redisReply *fcall_actual(run_t *run, const rec_t *r, const char *wm) {
        char b[24], obs[24], val[32], ret[24], win[24];

        snprintf(b, sizeof(b), "%" PRId64, T0 + r->k * RES);
        snprintf(obs, sizeof(obs), "%" PRId64, r->t);
        chorus_format_double(val, sizeof(val), r->value);
        snprintf(ret, sizeof(ret), "%" PRId64, run->retention);
        snprintf(win, sizeof(win), "%" PRId64, WIN);
        {
                const char *argv[] = {
                    "FCALL", "chorus_actual", "1", run->base, wm, "1", b, obs, val, ret, win, "1"};
                return redisCommandArgv(rc, 12, argv, NULL);
        }
}

static void pred_record(char *buf, size_t size, int64_t issued, double value) {
        char val[32];

        chorus_format_double(val, sizeof(val), value);
        snprintf(buf, size, "%" PRId64 "|%s|||-", issued, val);
}

static redisReply *fcall_prediction(run_t *run, int h, const char *model, int k, int64_t issued,
                                    double value, const char *wm) {
        char b[24], iss[24], val[32], rec[128], ret[24], win[24];

        snprintf(b, sizeof(b), "%" PRId64, T0 + k * RES);
        snprintf(iss, sizeof(iss), "%" PRId64, issued);
        chorus_format_double(val, sizeof(val), value);
        pred_record(rec, sizeof(rec), issued, value);
        snprintf(ret, sizeof(ret), "%" PRId64, run->retention);
        snprintf(win, sizeof(win), "%" PRId64, WIN);
        {
                const char *argv[] = {"FCALL",     "chorus_prediction",
                                      "1",         run->base,
                                      wm,          "1",
                                      "b",         "1",
                                      horizons[h], model,
                                      b,           iss,
                                      val,         rec,
                                      win,         ret,
                                      "1",         "1",
                                      "-"};
                return redisCommandArgv(rc, 19, argv, NULL);
        }
}

static void debug_check(run_t *run) {
        const char *argv[4 + NH * NM] = {"FCALL", "chorus_debug_check", "1"};
        char hm[NH * NM][64];
        redisReply *r;
        int n = 3;

        argv[n++] = run->base;
        for (int h = 0; h < NH; h++)
                for (int m = 0; m < NM; m++) {
                        snprintf(hm[h * NM + m], sizeof(hm[0]), "%s|%s", horizons[h], models[m]);
                        argv[n++] = hm[h * NM + m];
                }
        r = redisCommandArgv(rc, n, argv, NULL);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1, "debug_check: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        if (strcmp(r->element[0]->str, "ok")) {
                for (size_t i = 1; i < r->elements; i++)
                        fprintf(stderr, "debug_check after call %ld: %s\n", run->calls,
                                r->element[i]->str);
                cr_assert_fail("chorus_debug_check failed after call %ld", run->calls);
        }
        freeReplyObject(r);
        run->checked++;
}

/* ------------------------------------------------------------------ */
/* The C reference                                                     */
/* ------------------------------------------------------------------ */

static int same_bits(double a, double b) {
        return !memcmp(&a, &b, sizeof(a));
}

static int model_index(const char *name) {
        for (int m = 0; m < NM; m++)
                if (!strcmp(models[m], name))
                        return m;
        return -1;
}

/* The version of bucket k visible as of @p asof, or -1. */
static int visible(const act_state_t *a, int k, int64_t asof) {
        int64_t b = T0 + k * RES;

        return b > asof - WIN && b <= asof ? version_as_of(a, asof) : -1;
}

static void ref_scores(const model_state_t *s, int h, int m, int64_t asof,
                       chorus_score_agg_t *out) {
        chorus_scored_point_t pts[NB];
        size_t n = 0;

        for (int k = 0; k < NB; k++) {
                int v = visible(&s->act[k], k, asof);
                if (v >= 0 && s->pred[h][m][k].has) {
                        pts[n].bucket = T0 + k * RES;
                        pts[n].prediction = s->pred[h][m][k].value;
                        pts[n].actual = s->act[k].value[v];
                        n++;
                }
        }
        chorus_score_agg_build(pts, n, out);
}

static void ref_actuals(const model_state_t *s, int64_t asof, chorus_actual_point_t *pts,
                        chorus_spacing_count_t *buf, chorus_actual_agg_t *out) {
        size_t n = 0;

        for (int k = 0; k < NB; k++) {
                int v = visible(&s->act[k], k, asof);
                if (v >= 0) {
                        pts[n].bucket = T0 + k * RES;
                        pts[n].value = s->act[k].value[v];
                        n++;
                }
        }
        chorus_actual_agg_build(pts, n, buf, out);
}

static void assert_score_agg(const chorus_score_agg_t *got, const chorus_score_agg_t *want,
                             const char *what, int64_t asof) {
        cr_assert(got->n_se == want->n_se && got->n_ape == want->n_ape &&
                      same_bits(got->se_sum, want->se_sum) &&
                      same_bits(got->ape_sum, want->ape_sum),
                  "%s as of %" PRId64 ": got n_se %zu Σse %.17g n_ape %zu Σape %.17g, "
                  "want %zu %.17g %zu %.17g",
                  what, asof, got->n_se, got->se_sum, got->n_ape, got->ape_sum, want->n_se,
                  want->se_sum, want->n_ape, want->ape_sum);
}

static void assert_actual_agg(const chorus_actual_agg_t *got, const chorus_actual_agg_t *want,
                              int64_t asof) {
        cr_assert(
            got->n == want->n && got->n_diff == want->n_diff &&
                got->last_bucket == want->last_bucket &&
                same_bits(got->last_value, want->last_value) && same_bits(got->sum, want->sum) &&
                same_bits(got->css, want->css) && same_bits(got->diff_sum, want->diff_sum) &&
                same_bits(got->diff_css, want->diff_css) && got->n_spacings == want->n_spacings,
            "actuals as of %" PRId64 ": got n %zu last %" PRId64 " %.17g Σ %.17g css %.17g "
            "Σd %.17g cssd %.17g k %zu; want n %zu last %" PRId64
            " %.17g Σ %.17g css %.17g Σd %.17g cssd %.17g k %zu",
            asof, got->n, got->last_bucket, got->last_value, got->sum, got->css, got->diff_sum,
            got->diff_css, got->n_spacings, want->n, want->last_bucket, want->last_value, want->sum,
            want->css, want->diff_sum, want->diff_css, want->n_spacings);
        for (size_t i = 0; i < want->n_spacings; i++)
                cr_assert(got->spacings[i].spacing == want->spacings[i].spacing &&
                              got->spacings[i].count == want->spacings[i].count,
                          "spacing %zu as of %" PRId64, i, asof);
}

/* (a): an applied reply of group (h, k) against the model. */
static void check_reply(run_t *run, const redisReply *r, int h, int k) {
        static chorus_actual_point_t pts[NB];
        static chorus_spacing_count_t buf[NB];
        const model_state_t *s = run->ms;
        chorus_group_view_t view;
        chorus_actual_agg_t want_a;
        int64_t asof = INT64_MIN;
        size_t n_present = 0, n_expected = 0;

        cr_assert_eq(
            chorus_state_parse_group(r, "S", horizons[h], T0 + k * RES, &run->scratch, &view),
            CHORUS_OK);
        for (int m = 0; m < NM; m++)
                if (s->pred[h][m][k].has) {
                        n_present++;
                        if (s->pred[h][m][k].issued > asof)
                                asof = s->pred[h][m][k].issued;
                }
        cr_assert_eq(view.issued_at, asof);
        cr_assert_eq(view.n_models, n_present);
        for (size_t i = 0; i < view.n_models; i++) {
                int m = model_index(view.models[i].model);
                chorus_score_agg_t want;

                cr_assert(m >= 0 && s->pred[h][m][k].has);
                cr_assert(same_bits(view.models[i].value, s->pred[h][m][k].value));
                ref_scores(s, h, m, asof, &want);
                assert_score_agg(&view.models[i].scores, &want, models[m], asof);
        }
        ref_actuals(s, asof, pts, buf, &want_a);
        assert_actual_agg(&view.actuals, &want_a, asof);

        for (int m = 0; m < NM; m++)
                for (size_t i = 0; i < s->n_pubs[h][m]; i++)
                        if (s->pubs[h][m][i] > asof - WIN && s->pubs[h][m][i] <= asof) {
                                cr_assert(n_expected < view.n_publishers &&
                                          !strcmp(view.publishers[n_expected], models[m]));
                                n_expected++;
                                break;
                        }
        cr_assert_eq(view.n_publishers, n_expected);
}

/* ------------------------------------------------------------------ */
/* Applying a record to Redis and to the model                         */
/* ------------------------------------------------------------------ */

static void apply(run_t *run, const rec_t *rec) {
        model_state_t *s = run->ms;
        char wm[32];
        redisReply *r;
        const char *want;

        snprintf(wm, sizeof(wm), "t|%d", rec->id); /* one partition per record: never replayed */
        run->calls++;
        if (!rec->is_pred) {
                act_state_t *a = &s->act[rec->k];

                int64_t wobs = winner_obs(a);
                int same = -1;

                r = fcall_actual(run, rec, wm);
                for (int i = 0; i < a->n; i++)
                        if (a->obs[i] == rec->t)
                                same = i;
                if (a->n && wobs > rec->t)
                        want = "stale";
                else if (a->n && wobs == rec->t && same_bits(a->value[same], rec->value))
                        want = "duplicate";
                else
                        want = "applied";
                cr_assert(r && r->type == REDIS_REPLY_ARRAY, "chorus_actual: %s",
                          r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
                if (run->reference)
                        cr_assert_str_eq(r->element[0]->str, want);
                /* Every version counts as of its time, stale ones too; a
                 * second version with the same observed_at replaces the first. */
                if (strcmp(r->element[0]->str, "duplicate") &&
                    strcmp(r->element[0]->str, "replayed")) {
                        if (same < 0) {
                                cr_assert_lt(a->n, MAX_VERSIONS);
                                same = a->n++;
                        }
                        a->obs[same] = rec->t;
                        a->value[same] = rec->value;
                }
        } else {
                pred_state_t *p = &s->pred[rec->h][rec->m][rec->k];

                s->pubs[rec->h][rec->m][s->n_pubs[rec->h][rec->m]++] = rec->t;
                r = fcall_prediction(run, rec->h, models[rec->m], rec->k, rec->t, rec->value, wm);
                if (p->has && p->issued == rec->t && same_bits(p->value, rec->value))
                        want = "duplicate";
                else if (p->has && p->issued > rec->t)
                        want = "stale";
                else
                        want = "applied";
                cr_assert(r && r->type == REDIS_REPLY_ARRAY, "chorus_prediction: %s",
                          r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
                if (run->reference)
                        cr_assert_str_eq(r->element[0]->str, want);
                if (!strcmp(r->element[0]->str, "applied")) {
                        p->has = 1;
                        p->issued = rec->t;
                        p->value = rec->value;
                        run->applied++;
                        if (run->reference)
                                check_reply(run, r, rec->h, rec->k);
                }
        }
        freeReplyObject(r);
        if (run->check_every && run->calls % run->check_every == 0)
                debug_check(run);
}

static run_t run_new(const char *base, int64_t retention, int check_every, int reference) {
        run_t run = {.base = base,
                     .retention = retention,
                     .check_every = check_every,
                     .reference = reference,
                     .ms = model_new()};
        return run;
}

static void run_free(run_t *run) {
        model_free(run->ms);
        chorus_group_scratch_destroy(&run->scratch);
}

static void run_all(run_t *run, const dataset_t *d) {
        for (size_t i = 0; i < d->n; i++)
                apply(run, &d->recs[i]);
}

/* Replies as text, for byte-for-byte comparison of two runs. */
static void reply_text(const redisReply *r, char **buf, size_t *len, size_t *cap) {
        char tmp[64];
        const char *s = tmp;
        size_t n;

        switch (r->type) {
        case REDIS_REPLY_ARRAY:
                snprintf(tmp, sizeof(tmp), "[%zu:", r->elements);
                break;
        case REDIS_REPLY_INTEGER:
                snprintf(tmp, sizeof(tmp), "i%lld,", r->integer);
                break;
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
        case REDIS_REPLY_ERROR:
                s = r->str;
                break;
        default:
                snprintf(tmp, sizeof(tmp), "?%d", r->type);
        }
        /* Strings as hex: the functions' doubles are 8 binary bytes. */
        if (r->type == REDIS_REPLY_STRING) {
                static const char hex[] = "0123456789abcdef";
                while (*len + 2 * r->len + 2 > *cap) {
                        *cap = *cap ? *cap * 2 : 4096;
                        *buf = realloc(*buf, *cap);
                }
                for (size_t i = 0; i < r->len; i++) {
                        (*buf)[(*len)++] = hex[(unsigned char)r->str[i] >> 4];
                        (*buf)[(*len)++] = hex[(unsigned char)r->str[i] & 15];
                }
                (*buf)[(*len)++] = ',';
                (*buf)[*len] = 0;
                return;
        }
        n = strlen(s);
        while (*len + n + 2 > *cap) {
                *cap = *cap ? *cap * 2 : 4096;
                *buf = realloc(*buf, *cap);
        }
        memcpy(*buf + *len, s, n);
        *len += n;
        (*buf)[(*len)++] = r->type == REDIS_REPLY_ARRAY ? ' ' : ',';
        (*buf)[*len] = 0;
        if (r->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < r->elements; i++)
                        reply_text(r->element[i], buf, len, cap);
}

static char *to_text(const redisReply *r) {
        char *buf = NULL;
        size_t len = 0, cap = 0;

        reply_text(r, &buf, &len, &cap);
        return buf;
}

/* chorus_window_stats (read-only) of every model of horizon h as of asof. */
static redisReply *window_stats(const char *base, int h, int64_t asof) {
        char at[24], win[24];
        const char *argv[] = {"FCALL", "chorus_window_stats", "1",       base,      at,
                              win,     horizons[h],           models[0], models[1], models[2]};

        snprintf(at, sizeof(at), "%" PRId64, asof);
        snprintf(win, sizeof(win), "%" PRId64, WIN);
        return redisCommandArgv(rc, 10, argv, NULL);
}

static void check_window_stats(run_t *run, const redisReply *r, int h, int64_t asof) {
        static chorus_actual_point_t pts[NB];
        static chorus_spacing_count_t buf[NB];
        chorus_actual_agg_t got_a, want_a;

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "window_stats: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        for (int m = 0; m < NM; m++) {
                chorus_score_agg_t got, want;

                cr_assert_eq(chorus_state_parse_score_agg(r->element[0]->element[m], &got), 0);
                ref_scores(run->ms, h, m, asof, &want);
                assert_score_agg(&got, &want, models[m], asof);
        }
        cr_assert_eq(chorus_state_parse_actual_agg(r->element[1], &run->scratch, &got_a), 0);
        ref_actuals(run->ms, asof, pts, buf, &want_a);
        assert_actual_agg(&got_a, &want_a, asof);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* (a) and (c) in three arrival orders. */
Test(state_aggregates, replies_equal_exact_recomputation) {
        const double jitters[] = {0.0, 2.0 * DAY, -1.0};
        const char *bases[] = {"agg:{in-order}", "agg:{jitter}", "agg:{shuffled}"};

        for (int o = 0; o < 3; o++) {
                dataset_t d = make_dataset(42);
                run_t run = run_new(bases[o], 1000 * DAY, 4, 1);

                order(&d, 7 + (uint64_t)o, jitters[o]);
                run_all(&run, &d);
                debug_check(&run);
                cr_assert(run.applied > 1000, "applied %ld", run.applied);
                /* Read-only stats at many times, cursor path and scans alike. */
                for (int64_t asof = T0; asof < T0 + NB * RES + WIN; asof += 7 * HOUR + 13 * 60000)
                        for (int h = 0; h < NH; h++) {
                                redisReply *r = window_stats(run.base, h, asof);
                                check_window_stats(&run, r, h, asof);
                                freeReplyObject(r);
                        }
                run_free(&run);
                free(d.recs);
        }
}

/* (b): the same records in two orders, then the same probes: identical bytes. */
Test(state_aggregates, arrival_order_does_not_change_replies) {
        const char *bases[2] = {"agg:{order-a}", "agg:{order-b}"};
        char *texts[2][2 * NB];
        int n_probes = 0;

        for (int o = 0; o < 2; o++) {
                dataset_t d = make_dataset(99);
                run_t run = run_new(bases[o], 1000 * DAY, 0, 0);
                int p = 0;

                order(&d, 1000 + (uint64_t)o, o ? -1.0 : 6.0 * HOUR);
                run_all(&run, &d);
                debug_check(&run);
                /* Probes: a new model publishes for every 3rd bucket, mostly in
                 * time order but stepping back now and then (cursor moves
                 * forward and queries behind it), then read-only stats. */
                for (int k = 2; k < NB; k += 3) {
                        int kk = (k % 21 == 2 && k > 40) ? k - 40 : k;
                        char wm[32];
                        redisReply *r;

                        snprintf(wm, sizeof(wm), "probe|%d", k);
                        r = fcall_prediction(&run, k % NH, "zz-probe", kk,
                                             T0 + kk * RES - 5 * HOUR - k, 100.0 + k, wm);
                        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 8);
                        /* The revision counts the group's applied changes,
                         * which depends on how many arrived stale: skip it. */
                        r->element[1]->type = REDIS_REPLY_NIL;
                        texts[o][p++] = to_text(r);
                        r->element[1]->type = REDIS_REPLY_INTEGER;
                        freeReplyObject(r);
                        r = window_stats(run.base, k % NH, T0 + kk * RES + 3 * HOUR);
                        texts[o][p++] = to_text(r);
                        freeReplyObject(r);
                }
                debug_check(&run);
                n_probes = p;
                run_free(&run);
                free(d.recs);
        }
        for (int i = 0; i < n_probes; i++) {
                cr_assert_str_eq(texts[0][i], texts[1][i], "probe %d differs", i);
                free(texts[0][i]);
                free(texts[1][i]);
        }
}

/* (c) with retention trimming: a retention just above the window trims state
 * that cursors still count, because the actuals run 3 days ahead of the
 * predictions (cursors lag the newest actual by more than retention − W). */
Test(state_aggregates, trimming_keeps_aggregates_exact) {
        const char *bases[] = {"agg:{trim-a}", "agg:{trim-b}"};

        for (int o = 0; o < 2; o++) {
                dataset_t d = make_dataset(5 + (uint64_t)o);
                run_t run = run_new(bases[o], WIN + 2 * DAY, 3, 0);

                order_lead(&d, 3, o ? 4.0 * DAY : 0.0, 3.0 * DAY);
                run_all(&run, &d);
                debug_check(&run);
                run_free(&run);
                free(d.recs);
        }
}

/* A re-delivered record is answered from its snapshot with the same bytes,
 * whatever happened since. */
Test(state_aggregates, reemit_returns_the_snapshot) {
        run_t run = run_new("agg:{reemit}", 1000 * DAY, 0, 0);
        redisReply *first, *again;
        rec_t a = {.is_pred = 0, .k = 4, .t = T0 + 4 * RES + HOUR, .value = 101.5, .id = 1};
        char *t1, *t2;

        for (int k = 0; k < 6; k++) {
                rec_t r = {.is_pred = 0,
                           .k = k,
                           .t = T0 + k * RES + HOUR,
                           .value = 100 + k,
                           .id = 100 + k};
                apply(&run, &r);
        }
        first = fcall_prediction(&run, 0, "gb", 5, T0 + 5 * RES + 2 * HOUR, 104.0, "p|0");
        apply(&run, &a); /* changes the window before the re-delivery */
        again = fcall_prediction(&run, 0, "gb", 5, T0 + 5 * RES + 2 * HOUR, 104.0, "p|0");
        cr_assert_str_eq(first->element[0]->str, "applied");
        cr_assert_str_eq(again->element[0]->str, "reemit");
        cr_assert_eq(first->elements, again->elements);
        for (size_t i = 1; i < first->elements; i++) {
                t1 = to_text(first->element[i]);
                t2 = to_text(again->element[i]);
                cr_assert_str_eq(t1, t2, "element %zu", i);
                free(t1);
                free(t2);
        }
        freeReplyObject(first);
        freeReplyObject(again);
        run_free(&run);
}

/* Terms too large to sum are reported as +inf, the same way by the scan and
 * the cursor, and the C builder agrees. */
Test(state_aggregates, huge_values_give_infinite_sums) {
        run_t run = run_new("agg:{huge}", 1000 * DAY, 1, 1);

        for (int k = 0; k < 12; k++) {
                rec_t a = {.is_pred = 0,
                           .k = k,
                           .t = T0 + k * RES + HOUR,
                           .value = k == 5 ? 1e300 : 100.0 + k,
                           .id = 200 + k};
                rec_t p = {.is_pred = 1,
                           .h = 0,
                           .m = 1,
                           .k = k,
                           .t = T0 + k * RES + 2 * HOUR,
                           .value = 100.0,
                           .id = 300 + k};
                apply(&run, &a);
                apply(&run, &p);
        }
        debug_check(&run);
        run_free(&run);
}
