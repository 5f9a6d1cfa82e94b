/*
 * callgrind_workload: a fixed, I/O-free workload over Chorus's core code,
 * for instruction counts that do not depend on the machine's noise.
 *
 * Per record: encode a Prediction (chorus_codec_encode, Confluent framing),
 * decode it back (chorus_codec_decode: framing, bounds walk, Avro-C, field
 * mapping, validation), build the group's forecast from a synthetic group
 * view of --models models with --points scored points each and --points
 * actuals (chorus_forecast_build: chorus_score_stats, chorus_weights_compute,
 * chorus_weights_combine, chorus_guard_apply), and encode the
 * EnsembleForecast. With window aggregates (the state functions keep counts
 * and exact sums) the view holds those instead of points, and forecast_build
 * computes from them; the view is built the same way in both cases. The data comes from the
 * benchmark workload (workload.h).
 *
 * Only bench_workload_run() is meant to be measured: bench/callgrind.sh
 * passes --toggle-collect=bench_workload_run, so setup (schema parsing,
 * building the views) is not counted. Run natively it also prints ns/record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus/codec.h"
#include "chorus/config.h"
#include "chorus/forecast.h"
#include "workload.h"

#define N_VIEWS 16

typedef struct views {
        chorus_group_view_t view[N_VIEWS];
        chorus_group_model_t models[N_VIEWS][WL_MAX_MODELS];
        chorus_name_t series[N_VIEWS];
        const char *publishers[WL_MAX_MODELS];
} views_t;

static int cmp_model(const void *a, const void *b) {
        return strcmp(((const chorus_group_model_t *)a)->model,
                      ((const chorus_group_model_t *)b)->model);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * View v: series v, target bucket `points`, windows over the buckets before
 * it. Chorus's group view has carried two shapes: the window's points (the
 * walking skeleton) and, with incremental window aggregates, counts and
 * exact sums (CHORUS_XSUM_CAP marks that API). Either way the view is built
 * here, outside the measured function, as the state functions would return it.
 */
static void build_views(const wl_t *wl, views_t *vs, int points) {
        chorus_scored_point_t *pts = calloc((size_t)points + 1, sizeof(*pts));
        chorus_actual_point_t *acts = calloc((size_t)points + 1, sizeof(*acts));

        for (int m = 0; m < wl->n_models; m++)
                vs->publishers[m] = wl_model_name(m);
        qsort(vs->publishers, (size_t)wl->n_models, sizeof(char *), cmp_str);
        for (int v = 0; v < N_VIEWS; v++) {
                chorus_group_view_t *g = &vs->view[v];
                int s = v % wl->n_series;
                int64_t target = points;
                wl_fields_t f;

                memset(g, 0, sizeof(*g));
                wl_series_name(wl, s, vs->series[v], sizeof(vs->series[v]));
                g->series = vs->series[v];
                g->horizon = wl->horizon;
                g->bucket = wl->t0_ms + target * wl->resolution_ms;
                g->revision = 4;
                wl_prediction_fields(wl, s, 0, target, &f);
                g->issued_at = f.issued_at;
                g->n_models = (size_t)wl->n_models;
                g->models = vs->models[v];
                g->n_publishers = (size_t)wl->n_models;
                g->publishers = vs->publishers;
                for (int j = 0; j < points; j++) {
                        wl_actual_fields(wl, s, j, &f);
                        acts[j].bucket = wl->t0_ms + j * wl->resolution_ms;
                        acts[j].value = f.value;
                }
#ifdef CHORUS_XSUM_CAP
                chorus_actual_agg_build(acts, (size_t)points,
                                        calloc((size_t)points + 1, sizeof(chorus_spacing_count_t)),
                                        &g->actuals);
#else
                g->n_actuals = (size_t)points;
                g->actuals = calloc((size_t)points + 1, sizeof(*g->actuals));
                memcpy(g->actuals, acts, (size_t)points * sizeof(*acts));
#endif
                for (int m = 0; m < wl->n_models; m++) {
                        chorus_group_model_t *gm = &vs->models[v][m];
                        gm->model = wl_model_name(m);
                        wl_prediction_fields(wl, s, m, target, &f);
                        gm->issued_at = f.issued_at;
                        gm->value = f.value;
                        for (int j = 0; j < points; j++) {
                                wl_prediction_fields(wl, s, m, j, &f);
                                pts[j].bucket = acts[j].bucket;
                                pts[j].prediction = f.value;
                                pts[j].actual = acts[j].value;
                        }
#ifdef CHORUS_XSUM_CAP
                        chorus_score_agg_build(pts, (size_t)points, &gm->scores);
#else
                        gm->n_points = (size_t)points;
                        gm->points = calloc((size_t)points + 1, sizeof(*gm->points));
                        memcpy(gm->points, pts, (size_t)points * sizeof(*pts));
#endif
                }
                qsort(g->models, g->n_models, sizeof(*g->models), cmp_model);
        }
        free(pts);
        free(acts);
}

/* The measured part. Not static, not inlined: callgrind toggles on its name. */
__attribute__((noinline)) long bench_workload_run(chorus_codec_t *codec, const chorus_config_t *cfg,
                                                  const chorus_prediction_t *in, size_t n,
                                                  views_t *vs, chorus_buf_t *buf,
                                                  chorus_buf_t *out) {
        static chorus_prediction_t p;
        static chorus_forecast_t fc;
        char errstr[256];
        long bytes = 0;

        for (size_t i = 0; i < n; i++) {
                chorus_group_view_t *g = &vs->view[i % N_VIEWS];

                chorus_buf_reset(buf);
                if (chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                        1, &in[i], buf, errstr, sizeof(errstr)) ||
                    chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                        1, buf->data, buf->len, &p, NULL, errstr, sizeof(errstr))) {
                        fprintf(stderr, "callgrind_workload: %s\n", errstr);
                        exit(1);
                }
                /* The decoded prediction is the group's newest member. */
                for (size_t m = 0; m < g->n_models; m++)
                        if (!strcmp(g->models[m].model, p.model_id))
                                g->models[m].value = p.value;
                if (chorus_forecast_build(cfg, g, &fc)) {
                        fprintf(stderr, "callgrind_workload: forecast_build failed\n");
                        exit(1);
                }
                chorus_buf_reset(out);
                if (chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_CONFLUENT, 5,
                                        &fc, out, errstr, sizeof(errstr))) {
                        fprintf(stderr, "callgrind_workload: %s\n", errstr);
                        exit(1);
                }
                bytes += (long)out->len;
        }
        return bytes;
}

int main(int argc, char **argv) {
        size_t n = (size_t)atol(wl_arg(argc, argv, "--records", "20000"));
        int points = atoi(wl_arg(argc, argv, "--points", "30"));
        int n_models = atoi(wl_arg(argc, argv, "--models", "4"));
        chorus_config_t *cfg = chorus_config_new();
        chorus_prediction_t *in = calloc(n, sizeof(*in));
        chorus_buf_t buf = {0}, out = {0};
        static views_t vs;
        chorus_codec_t *codec;
        struct timespec t0, t1;
        char errstr[512];
        wl_t wl;
        long bytes;

        if (chorus_config_finalize(cfg, errstr, sizeof(errstr)) ||
            !(codec = chorus_codec_new(errstr, sizeof(errstr))) ||
            chorus_codec_register(codec, 1, CHORUS_RECORD_PREDICTION,
                                  chorus_record_schema_json(CHORUS_RECORD_PREDICTION), errstr,
                                  sizeof(errstr))) {
                fprintf(stderr, "callgrind_workload: %s\n", errstr);
                return 1;
        }
        if (wl_init(&wl, "S", N_VIEWS, n_models, 86400000, INT64_C(1577836800000), 4, points + 2)) {
                fprintf(stderr, "callgrind_workload: out of memory\n");
                return 1;
        }
        build_views(&wl, &vs, points);
        for (size_t i = 0; i < n; i++) {
                chorus_prediction_t *p = &in[i];
                int s = (int)(i % N_VIEWS), m = (int)((i / N_VIEWS) % (size_t)n_models);
                wl_fields_t f;

                wl_prediction_fields(&wl, s, m, points, &f);
                snprintf(p->model_id, sizeof(p->model_id), "%s", wl_model_name(m));
                wl_series_name(&wl, s, p->series, sizeof(p->series));
                snprintf(p->horizon, sizeof(p->horizon), "%s", wl.horizon);
                p->issued_at = f.issued_at;
                p->target_time = f.target_time;
                p->value = f.value;
                if (m == 0) {
                        p->has_lower = p->has_upper = 1;
                        p->lower = f.value * 0.98;
                        p->upper = f.value * 1.02;
                }
        }

        clock_gettime(CLOCK_MONOTONIC, &t0);
        bytes = bench_workload_run(codec, cfg, in, n, &vs, &buf, &out);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("{\"records\": %zu, \"points\": %d, \"models\": %d, \"forecast_bytes\": %ld, "
               "\"ns_per_record\": %.1f}\n",
               n, points, n_models, bytes,
               ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                   (double)n);
        chorus_buf_destroy(&buf);
        chorus_buf_destroy(&out);
        chorus_codec_destroy(codec);
        chorus_config_destroy(cfg);
        free(in);
        wl_destroy(&wl);
        return 0;
}
