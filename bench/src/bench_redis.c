/*
 * bench_redis: the Redis state ceiling. Chorus's own state module
 * (chorus_state_add_prediction / chorus_state_add_actual / batch_exec, so the
 * very FCALL argument lists the worker sends, against the functions the
 * worker loads) drives the benchmark workload into Redis with no Kafka at
 * all, in pipelines of --pipeline calls, and reports calls per second.
 *
 * Order: actual(0), then per target bucket k = 1..days, per series,
 * actual(k) followed by the predictions for k: the same records as the
 * Kafka preload, ordered so that no prediction is ever held (its series'
 * actuals have always reached its issued_at), as in a worker's steady state.
 *
 * Like the worker, it releases the snapshots of a batch's applied predictions
 * (chorus_release, when this Chorus has it: BENCH_HAVE_RELEASE) with the
 * next round trip, at the head of its pipeline.
 *
 * --compute 1 also parses every "applied" reply and builds the forecast
 * (chorus_state_parse_group + chorus_forecast_build): the state+compute
 * ceiling of a worker without Kafka.
 *
 * Output: one JSON object on stdout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus/config.h"
#include "chorus/forecast.h"
#include "chorus/state.h"
#include "workload.h"

typedef struct run {
        wl_t *wl;
        chorus_config_t *cfg;
        chorus_state_t *st;
        int pipeline, compute;
        /* the current batch: what was queued, to interpret the replies */
        chorus_prediction_t *preds;
        int *is_pred;
        int64_t *buckets;
        int *series_of;
        size_t n;
        /* snapshots to release with the next round trip: per series, the
         * highest offset of an applied prediction */
        int64_t *release_offset; /* [n_series], -1: none */
        int *release_list, n_release, n_release_cmds;
        int64_t *offsets;
        int64_t offset;
        uint64_t batch_seq;
        long long calls, applied, held, other, forecasts, releases;
        chorus_group_scratch_t scratch;
        chorus_forecast_t forecast;
} run_t;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void flush_batch(run_t *r) {
        char errstr[512];

        if (!r->n)
                return;
        if (chorus_state_batch_exec(r->st, errstr, sizeof(errstr))) {
                fprintf(stderr, "bench_redis: %s\n", errstr);
                exit(1);
        }
        r->n_release = 0;
        for (size_t i = 0; i < r->n; i++) {
                const redisReply *rep =
                    chorus_state_batch_reply(r->st, i + (size_t)r->n_release_cmds);
                switch (chorus_state_reply_status(rep)) {
                case CHORUS_APPLY_APPLIED:
                        r->applied++;
                        if (r->is_pred[i]) {
                                int s = r->series_of[i];
                                if (r->release_offset[s] < 0)
                                        r->release_list[r->n_release++] = s;
                                r->release_offset[s] = r->offsets[i];
                        }
                        if (r->compute && r->is_pred[i]) {
                                chorus_group_view_t view;
                                const chorus_prediction_t *p = &r->preds[i];
                                if (!chorus_state_parse_group(rep, p->series, p->horizon,
                                                              r->buckets[i], &r->scratch, &view) &&
                                    !chorus_forecast_build(r->cfg, &view, &r->forecast))
                                        r->forecasts++;
                        }
                        break;
                case CHORUS_APPLY_HOLD:
                        r->held++;
                        break;
                case CHORUS_APPLY_ERROR:
                        fprintf(stderr, "bench_redis: state function failed: %s\n",
                                rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
                        exit(1);
                default:
                        r->other++;
                }
        }
        r->calls += (long long)r->n;
        r->n = 0;
}

static int add(const wl_rec_t *rec, void *opaque) {
        run_t *r = opaque;
        wl_fields_t f;

        if (r->n == 0) {
                char id[48];
                snprintf(id, sizeof(id), "bench-%" PRIu64, ++r->batch_seq);
                chorus_state_batch_begin(r->st, id);
                r->n_release_cmds = 0;
#ifdef BENCH_HAVE_RELEASE
                for (int i = 0; i < r->n_release; i++) {
                        int s = r->release_list[i];
                        char series[CHORUS_NAME_MAX + 1];
                        wl_series_name(r->wl, s, series, sizeof(series));
                        chorus_state_add_release(r->st, series, "bench.redis", 0,
                                                 r->release_offset[s]);
                        r->release_offset[s] = -1;
                        r->n_release_cmds++;
                }
#else
                for (int i = 0; i < r->n_release; i++)
                        r->release_offset[r->release_list[i]] = -1;
#endif
                r->releases += r->n_release_cmds;
        }
        r->is_pred[r->n] = rec->is_prediction;
        r->series_of[r->n] = rec->series;
        r->offsets[r->n] = r->offset;
        if (rec->is_prediction) {
                chorus_prediction_t *p = &r->preds[r->n];
                int64_t bucket;
                memset(p, 0, sizeof(*p));
                wl_prediction_fields(r->wl, rec->series, rec->model, rec->bucket, &f);
                snprintf(p->model_id, sizeof(p->model_id), "%s", wl_model_name(rec->model));
                wl_series_name(r->wl, rec->series, p->series, sizeof(p->series));
                snprintf(p->horizon, sizeof(p->horizon), "%s", r->wl->horizon);
                p->issued_at = f.issued_at;
                p->target_time = f.target_time;
                p->value = f.value;
                if (rec->model == 0) { /* as encoded by workload.c */
                        p->has_lower = p->has_upper = 1;
                        p->lower = f.value * 0.98;
                        p->upper = f.value * 1.02;
                }
                bucket = chorus_bucket_of(p->target_time, r->wl->resolution_ms);
                r->buckets[r->n] = bucket;
                chorus_source_t src = {"bench.redis", 0, r->offset++, 1, "-"};
                chorus_state_add_prediction(r->st, p, &src, bucket, 0, 1);
        } else {
                chorus_actual_t a;
                memset(&a, 0, sizeof(a));
                wl_actual_fields(r->wl, rec->series, rec->bucket, &f);
                wl_series_name(r->wl, rec->series, a.series, sizeof(a.series));
                a.observed_at = f.observed_at;
                a.value = f.value;
                chorus_source_t src = {"bench.redis", 0, r->offset++, 1, "-"};
                chorus_state_add_actual(r->st, &a, &src,
                                        chorus_bucket_of(a.observed_at, r->wl->resolution_ms));
        }
        if (++r->n == (size_t)r->pipeline)
                flush_batch(r);
        return 0;
}

int main(int argc, char **argv) {
        int n_series = atoi(wl_arg(argc, argv, "--series", "1000"));
        int n_models = atoi(wl_arg(argc, argv, "--models", "4"));
        int64_t days = strtoll(wl_arg(argc, argv, "--to", "400"), NULL, 10);
        int64_t t0 = strtoll(wl_arg(argc, argv, "--t0", "1577836800000"), NULL, 10);
        uint64_t seed = strtoull(wl_arg(argc, argv, "--seed", "4"), NULL, 10);
        int64_t limit = strtoll(wl_arg(argc, argv, "--limit", "0"), NULL, 10);
        run_t r = {0};
        wl_t wl;
        char errstr[512];
        double t_start, t_end;

        r.pipeline = atoi(wl_arg(argc, argv, "--pipeline", "1000"));
        r.compute = atoi(wl_arg(argc, argv, "--compute", "0"));
        r.cfg = chorus_config_new();
        if (chorus_config_set(r.cfg, "redis.host", "127.0.0.1", errstr, sizeof(errstr)) ||
            chorus_config_set(r.cfg, "redis.port", wl_arg(argc, argv, "--port", "6379"), errstr,
                              sizeof(errstr)) ||
            chorus_config_set(r.cfg, "redis.key_prefix", wl_arg(argc, argv, "--prefix", "bench"),
                              errstr, sizeof(errstr)) ||
            chorus_config_finalize(r.cfg, errstr, sizeof(errstr))) {
                fprintf(stderr, "bench_redis: %s\n", errstr);
                return 2;
        }
        if (!(r.st = chorus_state_new(r.cfg, errstr, sizeof(errstr)))) {
                fprintf(stderr, "bench_redis: %s\n", errstr);
                return 1;
        }
        if (wl_init(&wl, wl_arg(argc, argv, "--series-prefix", "S"), n_series, n_models, 86400000,
                    t0, seed, days + 2)) {
                fprintf(stderr, "bench_redis: out of memory\n");
                return 1;
        }
        r.wl = &wl;
        r.preds = calloc((size_t)r.pipeline, sizeof(*r.preds));
        r.is_pred = calloc((size_t)r.pipeline, sizeof(*r.is_pred));
        r.buckets = calloc((size_t)r.pipeline, sizeof(*r.buckets));
        r.series_of = calloc((size_t)r.pipeline, sizeof(*r.series_of));
        r.offsets = calloc((size_t)r.pipeline, sizeof(*r.offsets));
        r.release_offset = malloc((size_t)n_series * sizeof(*r.release_offset));
        r.release_list = calloc((size_t)n_series, sizeof(*r.release_list));
        for (int i = 0; i < n_series; i++)
                r.release_offset[i] = -1;

        t_start = now_s();
        wl_plan(&wl, WL_ORDER_ACTS, 0, 1, add, &r);
        if (limit > 0) {
                /* Whole buckets until at least --limit calls. */
                int64_t per = (int64_t)wl_plan_count(&wl, WL_ORDER_LEAD, 0, 1);
                int64_t k_to = 1 + (limit + per - 1) / per;
                days = k_to - 1 < days ? k_to - 1 : days;
        }
        wl_plan(&wl, WL_ORDER_LEAD, 1, days + 1, add, &r);
        flush_batch(&r);
        t_end = now_s();

        printf("{\"calls\": %lld, \"seconds\": %.3f, \"calls_per_s\": %.1f, \"applied\": %lld, "
               "\"held\": %lld, \"other\": %lld, \"forecasts\": %lld, \"releases\": %lld, "
               "\"pipeline\": %d, \"compute\": %d}\n",
               r.calls, t_end - t_start, (double)r.calls / (t_end - t_start), r.applied, r.held,
               r.other, r.forecasts, r.releases, r.pipeline, r.compute);
        chorus_group_scratch_destroy(&r.scratch);
        chorus_state_destroy(r.st);
        chorus_config_destroy(r.cfg);
        free(r.preds);
        free(r.is_pred);
        free(r.buckets);
        free(r.series_of);
        free(r.offsets);
        free(r.release_offset);
        free(r.release_list);
        wl_destroy(&wl);
        return 0;
}
