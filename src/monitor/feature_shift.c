/*
 * FEATURE_SHIFT records: see include/chorus/feature_shift.h and
 * src/state/lua/77_feature_shift.lua.
 */
#include "chorus/feature_shift.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/monitor.h"
#include "chorus/util.h"

#define NUM     32       /* a formatted number */
#define DAY_MS  86400000 /* one day of event time */
#define FS_ARGS 17       /* FCALL, name, numkeys, base, then 13 ARGV before the features */

struct chorus_feature_shift {
        const chorus_config_t *cfg;
        chorus_feature_importance_t rec;
        double norm[CHORUS_MAX_FEATURES]; /* rec's importances, normalised */
};

chorus_feature_shift_t *chorus_feature_shift_new(const chorus_config_t *cfg) {
        chorus_feature_shift_t *fs = calloc(1, sizeof(*fs));

        if (fs)
                fs->cfg = cfg;
        return fs;
}

void chorus_feature_shift_destroy(chorus_feature_shift_t *fs) {
        free(fs);
}

chorus_err_t chorus_feature_shift_normalise(const chorus_feature_importance_t *fi, double *out,
                                            char *errstr, size_t errstr_size) {
        double sum = 0;

        for (size_t i = 0; i < fi->n_features; i++) {
                /* A negative importance (a noisy permutation importance, a
                 * signed SHAP mean) has no share of a whole: normalising it
                 * would give negative references and meaningless changes. */
                if (fi->importance[i] < 0) {
                        chorus_seterr(errstr, errstr_size,
                                      "field importances: %s is negative (%.17g); importances "
                                      "must be >= 0",
                                      fi->feature[i], fi->importance[i]);
                        return CHORUS_ERR_BAD_IMPORTANCES;
                }
                sum += fi->importance[i];
        }
        if (!(sum > 0)) {
                chorus_seterr(errstr, errstr_size,
                              "field importances: %zu feature(s) summing to 0; at least one must "
                              "be positive",
                              fi->n_features);
                return CHORUS_ERR_BAD_IMPORTANCES;
        }
        if (!isfinite(sum)) {
                chorus_seterr(errstr, errstr_size,
                              "field importances: their sum overflows a double; scale them down");
                return CHORUS_ERR_BAD_IMPORTANCES;
        }
        for (size_t i = 0; i < fi->n_features; i++)
                out[i] = fi->importance[i] / sum;
        return CHORUS_OK;
}

chorus_err_t chorus_feature_shift_decode(chorus_feature_shift_t *fs, chorus_codec_t *codec,
                                         const chorus_topic_conf_t *t, const void *value,
                                         size_t len, char *errstr, size_t errstr_size) {
        chorus_err_t err =
            chorus_codec_decode(codec, CHORUS_RECORD_FEATURE_IMPORTANCE, t->framing, t->schema_id,
                                value, len, &fs->rec, NULL, errstr, errstr_size);

        if (err)
                return err;
        return chorus_feature_shift_normalise(&fs->rec, fs->norm, errstr, errstr_size);
}

const chorus_feature_importance_t *chorus_feature_shift_record(const chorus_feature_shift_t *fs) {
        return &fs->rec;
}

/* "<prefix>:{fi|<model>}": a series name never contains '|', so no series'
 * base key can be a model's. */
static void base_of(const chorus_state_t *st, char *buf, size_t size, const char *model) {
        char tag[CHORUS_NAME_MAX + 8];

        snprintf(tag, sizeof(tag), "fi|%s", model);
        chorus_state_base_key(st, buf, size, tag);
}

void chorus_feature_shift_queue(const chorus_feature_shift_t *fs, chorus_state_t *st,
                                const chorus_source_t *src, const char *batch_id) {
        const chorus_config_t *c = fs->cfg;
        const chorus_feature_importance_t *fi = &fs->rec;
        size_t argc = FS_ARGS + 2 * fi->n_features, k = 0;
        const char **argv = malloc(argc * sizeof(*argv));
        char(*num)[NUM] = malloc((fi->n_features + 1) * sizeof(*num));
        char base[CHORUS_NAME_MAX + 96], wm[300], off[NUM], ep[NUM], at[NUM], change[NUM], top[NUM],
            days[NUM], keep[NUM], n[NUM];
        int64_t keep_days =
            c->retention_days > c->alerts_fs_days ? c->retention_days : c->alerts_fs_days;

        if (!argv || !num) {
                fprintf(stderr, "chorus: out of memory queueing a feature-importance call\n");
                abort();
        }
        base_of(st, base, sizeof(base), fi->model_id);
        snprintf(wm, sizeof(wm), "%s|%d", src->topic, (int)src->partition);
        snprintf(off, sizeof(off), "%" PRId64, src->offset);
        snprintf(ep, sizeof(ep), "%" PRId64, src->epoch);
        snprintf(at, sizeof(at), "%" PRId64, fi->computed_at);
        chorus_format_double(change, sizeof(change), c->alerts_fs_change);
        snprintf(top, sizeof(top), "%d", c->alerts_fs_top_n);
        snprintf(days, sizeof(days), "%d", c->alerts_fs_days);
        snprintf(keep, sizeof(keep), "%" PRId64, keep_days * DAY_MS);
        snprintf(n, sizeof(n), "%zu", fi->n_features);
        argv[k++] = "FCALL";
        argv[k++] = "chorus_feature_importance";
        argv[k++] = "1";
        argv[k++] = base;
        argv[k++] = wm;
        argv[k++] = off;
        argv[k++] = batch_id;
        argv[k++] = ep;
        argv[k++] = src->committed_batches;
        argv[k++] = fi->model_id;
        argv[k++] = fi->has_series ? fi->series : "";
        argv[k++] = at;
        argv[k++] = change;
        argv[k++] = top;
        argv[k++] = days;
        argv[k++] = keep;
        argv[k++] = n;
        for (size_t i = 0; i < fi->n_features; i++) {
                chorus_format_double(num[i], NUM, fs->norm[i]);
                argv[k++] = fi->feature[i];
                argv[k++] = num[i];
        }
        chorus_state_add_command(st, (int)argc, argv);
        free(num);
        free(argv);
}

void chorus_feature_shift_queue_release(chorus_state_t *st, const char *model, const char *topic,
                                        int32_t partition, int64_t offset) {
        char base[CHORUS_NAME_MAX + 96], wm[300], off[NUM];
        const char *argv[] = {"FCALL", "chorus_release", "1", base, wm, off};

        base_of(st, base, sizeof(base), model);
        snprintf(wm, sizeof(wm), "%s|%d", topic, (int)partition);
        snprintf(off, sizeof(off), "%" PRId64, offset);
        chorus_state_add_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

chorus_fs_status_t chorus_feature_shift_reply_status(const redisReply *r) {
        static const struct {
                const char *name;
                chorus_fs_status_t status;
                int alerts; /* may carry alerts */
        } names[] = {
            {"applied", CHORUS_FS_APPLIED, 1},   {"unjudged", CHORUS_FS_UNJUDGED, 0},
            {"late", CHORUS_FS_LATE, 0},         {"reemit", CHORUS_FS_REEMIT, 1},
            {"replayed", CHORUS_FS_REPLAYED, 0}, {"fenced", CHORUS_FS_FENCED, 0},
        };

        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING)
                return CHORUS_FS_ERROR;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                if (strcmp(r->element[0]->str, names[i].name))
                        continue;
                if (!names[i].alerts && r->elements != 1)
                        return CHORUS_FS_ERROR;
                for (size_t k = 1; k < r->elements; k++)
                        if (r->element[k]->type != REDIS_REPLY_ARRAY)
                                return CHORUS_FS_ERROR;
                return names[i].status;
        }
        return CHORUS_FS_ERROR;
}

size_t chorus_feature_shift_reply_alerts(const redisReply *r) {
        chorus_fs_status_t s = chorus_feature_shift_reply_status(r);

        return s == CHORUS_FS_APPLIED || s == CHORUS_FS_REEMIT ? r->elements - 1 : 0;
}

chorus_err_t chorus_feature_shift_reply_alert(const redisReply *r, size_t i, chorus_alert_t *out) {
        if (i >= chorus_feature_shift_reply_alerts(r))
                return CHORUS_ERR_STATE;
        /* The same alert array as chorus_monitor's outputs (15_alerts.lua). */
        return chorus_monitor_reply_alert(r, i, out);
}
