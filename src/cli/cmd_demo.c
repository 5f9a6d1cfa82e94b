/*
 * `chorus demo`: the whole pipeline on one machine with nothing to set up.
 *
 * Kafka is librdkafka's in-process mock cluster and Redis is a private
 * redis-server child on a free port. The data is generated from a fixed
 * seed: a few series following random walks, and models of clearly
 * different skill predicting the next day. A handful of bad records (NaN,
 * garbage bytes, a broken name) show the dead-letter path. The worker is
 * the production worker; the demo only feeds it and reads its output.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "chorus/cli.h"
#include "chorus/codec.h"
#include "chorus/log.h"
#include "chorus/redis_server.h"
#include "chorus/state.h"
#include "chorus/worker.h"

#define DAY_MS        INT64_C(86400000)
#define DEMO_START_MS INT64_C(1704067200000) /* 2024-01-01T00:00:00Z */

static const struct {
        const char *name;
        double start, daily_vol;
} demo_series[] = {{"ZL", 48.0, 0.015}, {"AAPL", 185.0, 0.018}, {"BRK.B", 360.0, 0.009}};

/* Relative noise and bias of each model's next-day prediction. */
static const struct {
        const char *name;
        double noise, bias;
} demo_models[] = {
    {"lstm", 0.004, 0.0},
    {"arima_garch", 0.008, 0.0},
    {"gb", 0.012, 0.002},
    {"naive_drift", 0.030, 0.025}, /* deliberately poor */
};

/* From this day on "gb" breaks (a bias of 4 %), so that the monitoring has
 * something to say: the ensemble's MAPE degrades and the weights move. */
#define DEMO_BREAK_DAY  90
#define DEMO_BREAK_BIAS 0.04

#define N_SERIES (sizeof(demo_series) / sizeof(demo_series[0]))
#define N_MODELS (sizeof(demo_models) / sizeof(demo_models[0]))

/* ------------------------------------------------------------------ */
/* Deterministic data                                                  */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) {
        return ((double)(splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *s) {
        return sqrt(-2.0 * log(uniform01(s))) * cos(2.0 * M_PI * uniform01(s));
}

typedef struct demo {
        rd_kafka_t *producer;
        rd_kafka_mock_cluster_t *mcluster;
        chorus_codec_t *codec;
        chorus_buf_t buf;
        const chorus_config_t *cfg;
        int days;
        uint64_t produced;
} demo_t;

static int produce_raw(demo_t *d, const char *topic, const char *key, const void *val, size_t len) {
        rd_kafka_resp_err_t err;

        while ((err = rd_kafka_producev(
                    d->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                    RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(d->producer, 50);
        if (err) {
                fprintf(stderr, "chorus demo: produce: %s\n", rd_kafka_err2str(err));
                return -1;
        }
        d->produced++;
        return 0;
}

static int produce_record(demo_t *d, chorus_topic_role_t role, const char *key, const void *rec) {
        const chorus_topic_conf_t *t = &d->cfg->topics[role];
        char errstr[256];

        chorus_buf_reset(&d->buf);
        if (chorus_codec_encode(d->codec, t->type, t->framing, t->schema_id, rec, &d->buf, errstr,
                                sizeof(errstr))) {
                fprintf(stderr, "chorus demo: encode: %s\n", errstr);
                return -1;
        }
        return produce_raw(d, t->name, key, d->buf.data, d->buf.len);
}

/* Day d's close is observed at 21:00 UTC; predictions for day d+1 are
 * issued at 22:00 UTC on day d, after that close. */
static int generate(demo_t *d) {
        uint64_t seed = 20240101;
        double level[N_SERIES];

        for (size_t s = 0; s < N_SERIES; s++)
                level[s] = demo_series[s].start;
        for (int day = 0; day < d->days; day++) {
                int64_t bucket = DEMO_START_MS + day * DAY_MS;
                for (size_t s = 0; s < N_SERIES; s++) {
                        chorus_actual_t a = {0};
                        snprintf(a.series, sizeof(a.series), "%s", demo_series[s].name);
                        a.observed_at = bucket + 21 * 3600 * INT64_C(1000);
                        a.value = level[s];
                        if (produce_record(d, CHORUS_TOPIC_ACTUALS, a.series, &a))
                                return -1;
                }
                for (size_t s = 0; s < N_SERIES; s++) {
                        double next = level[s] * exp(demo_series[s].daily_vol * normal(&seed));
                        for (size_t m = 0; m < N_MODELS && day + 1 < d->days; m++) {
                                chorus_prediction_t p = {0};
                                snprintf(p.model_id, sizeof(p.model_id), "%s", demo_models[m].name);
                                snprintf(p.series, sizeof(p.series), "%s", demo_series[s].name);
                                snprintf(p.horizon, sizeof(p.horizon), "1d");
                                p.issued_at = bucket + 22 * 3600 * INT64_C(1000);
                                p.target_time = bucket + DAY_MS;
                                double bias = demo_models[m].bias;

                                if (day >= DEMO_BREAK_DAY && !strcmp(demo_models[m].name, "gb"))
                                        bias = DEMO_BREAK_BIAS;
                                p.value =
                                    next * (1.0 + bias + demo_models[m].noise * normal(&seed));
                                if (produce_record(d, CHORUS_TOPIC_PREDICTIONS, p.series, &p))
                                        return -1;
                        }
                        level[s] = next;
                }
        }
        return 0;
}

/* Records that must end in the dead-letter topic, each for its own reason. */
static int generate_bad_input(demo_t *d) {
        static const unsigned char garbage[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff};
        const char *predictions = d->cfg->topics[CHORUS_TOPIC_PREDICTIONS].name;
        chorus_prediction_t p = {0};

        snprintf(p.model_id, sizeof(p.model_id), "lstm");
        snprintf(p.series, sizeof(p.series), "ZL");
        snprintf(p.horizon, sizeof(p.horizon), "1d");
        p.issued_at = DEMO_START_MS;
        p.target_time = DEMO_START_MS + DAY_MS;
        p.value = NAN;
        if (produce_record(d, CHORUS_TOPIC_PREDICTIONS, "ZL", &p))
                return -1;
        p.value = 1.0;
        snprintf(p.series, sizeof(p.series), "bad series");
        if (produce_record(d, CHORUS_TOPIC_PREDICTIONS, "bad series", &p))
                return -1;
        return produce_raw(d, predictions, "ZL", garbage, sizeof(garbage));
}

/* ------------------------------------------------------------------ */
/* Summary                                                             */
/* ------------------------------------------------------------------ */

typedef struct last_forecast {
        chorus_forecast_t fc;
        int seen;
        chorus_model_stats_t stats[CHORUS_MAX_MODELS]; /* as of fc.issued_at, from Redis */
} last_forecast_t;

/* Reads all of @p role's topic, calling @p fn with each record decoded as @p type. */
static long read_topic(demo_t *d, const char *bootstrap, chorus_topic_role_t role,
                       chorus_record_type_t type, void *rec, void (*fn)(const void *rec, void *ctx),
                       void *ctx) {
        const chorus_topic_conf_t *t = &d->cfg->topics[role];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        char errstr[256];
        int eof = 0, n_parts = 0;
        long n = 0;

        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", "chorus-demo-reader", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, "chorus demo: %s\n", errstr);
                return -1;
        }
        rkt = rd_kafka_topic_new(rk, t->name, NULL);
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1)
                n_parts = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);

        parts = rd_kafka_topic_partition_list_new(n_parts);
        for (int p = 0; p < n_parts; p++)
                rd_kafka_topic_partition_list_add(parts, t->name, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);

        while (eof < n_parts) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
                if (!m)
                        break;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        eof++;
                else if (!m->err &&
                         !chorus_codec_decode(d->codec, type, t->framing, t->schema_id, m->payload,
                                              m->len, rec, NULL, errstr, sizeof(errstr))) {
                        n++;
                        fn(rec, ctx);
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

/* Keeps the newest forecast per series. */
static void keep_last(const void *rec, void *ctx) {
        const chorus_forecast_t *fc = rec;
        last_forecast_t *last = ctx;

        for (size_t s = 0; s < N_SERIES; s++)
                if (!strcmp(fc->series, demo_series[s].name) &&
                    (!last[s].seen || fc->target_time > last[s].fc.target_time ||
                     (fc->target_time == last[s].fc.target_time &&
                      fc->revision > last[s].fc.revision))) {
                        last[s].fc = *fc;
                        last[s].seen = 1;
                }
}

/* The alerts for the summary: counts per type, and the first firing ones
 * that page (critical, then warning; info is only counted). */
typedef struct alert_log {
        struct {
                char type[32];
                size_t firing, resolved;
        } by_type[16];
        size_t n_types;
        chorus_alert_t critical[3], warning[3];
        size_t n_critical, n_warning;
} alert_log_t;

static void log_alert(const void *rec, void *ctx) {
        const chorus_alert_t *a = rec;
        alert_log_t *log = ctx;
        size_t t = 0;
        int firing = !strcmp(a->state, "firing");

        while (t < log->n_types && strcmp(log->by_type[t].type, a->type))
                t++;
        if (t == log->n_types && log->n_types < sizeof(log->by_type) / sizeof(log->by_type[0]))
                snprintf(log->by_type[log->n_types++].type, sizeof(log->by_type[0].type), "%s",
                         a->type);
        if (t < log->n_types) {
                if (firing)
                        log->by_type[t].firing++;
                else
                        log->by_type[t].resolved++;
        }
        if (firing && !strcmp(a->severity, "critical") && log->n_critical < 3)
                log->critical[log->n_critical++] = *a;
        if (firing && !strcmp(a->severity, "warning") && log->n_warning < 3)
                log->warning[log->n_warning++] = *a;
}

static void print_alerts(const alert_log_t *log) {
        printf("\nalerts (chorus.alerts; docs/alerts.md says what each means):\n");
        if (!log->n_types)
                printf("  none\n");
        for (size_t t = 0; t < log->n_types; t++)
                printf("  %-20s %3zu firing, %3zu resolved\n", log->by_type[t].type,
                       log->by_type[t].firing, log->by_type[t].resolved);
        if (log->n_critical + log->n_warning)
                printf("the first that page:\n");
        for (size_t i = 0; i < log->n_critical; i++)
                printf("  critical %s\n", log->critical[i].message);
        for (size_t i = 0; i < log->n_warning; i++)
                printf("  warning  %s\n", log->warning[i].message);
}

static void print_summary(const chorus_worker_stats_t *st, long n_forecasts,
                          const last_forecast_t *last, double seconds) {
        printf("\n== Chorus demo ==\n");
        printf("input: %" PRIu64 " predictions, %" PRIu64
               " actuals; %ld forecasts emitted in %.1f s\n",
               st->records_in[CHORUS_TOPIC_PREDICTIONS], st->records_in[CHORUS_TOPIC_ACTUALS],
               n_forecasts, seconds);
        printf("state: %" PRIu64 " applied, %" PRIu64 " duplicates, %" PRIu64 " held for actuals, "
               "%" PRIu64 " Redis round trips for %" PRIu64 " batches\n",
               st->applied, st->duplicates, st->held, st->redis_round_trips, st->batches);
        printf("dead letters:");
        for (int e = 0; e < CHORUS_ERR__COUNT; e++)
                if (st->dead_letters[e])
                        printf(" %s=%" PRIu64, chorus_err2code((chorus_err_t)e),
                               st->dead_letters[e]);
        printf("\n");

        for (size_t s = 0; s < N_SERIES; s++) {
                const chorus_forecast_t *fc = &last[s].fc;
                if (!last[s].seen)
                        continue;
                printf("\n%s  horizon %s  target %" PRId64 " (day %" PRId64 ")  revision %" PRId64
                       "\n",
                       fc->series, fc->horizon, fc->target_time,
                       (fc->target_time - DEMO_START_MS) / DAY_MS, fc->revision);
                printf("  %-12s %10s %8s %8s\n", "model", "MAPE %", "points", "weight");
                for (size_t i = 0; i < fc->n_present; i++)
                        printf("  %-12s %10.3f %8zu %8.4f\n", fc->present[i], last[s].stats[i].mape,
                               last[s].stats[i].n_ape, fc->weight[i]);
                printf("  forecast %.4f (raw %.4f)  z %s%.2f%s  method %s%s%s\n", fc->value,
                       fc->raw_value, fc->has_z_score ? "" : "(",
                       fc->has_z_score ? fc->z_score : 0.0, fc->has_z_score ? "" : " n/a)",
                       fc->weighting_method, fc->fallback ? "  fallback " : "",
                       fc->fallback ? chorus_fallback_name(fc->fallback) : "");
        }
}

/* Each model's window MAPE as of its series' last forecast, from Redis. */
static int model_stats(const chorus_config_t *cfg, last_forecast_t *last) {
        char errstr[256];
        chorus_state_t *st = chorus_state_new(cfg, errstr, sizeof(errstr));

        if (!st) {
                fprintf(stderr, "chorus demo: %s\n", errstr);
                return -1;
        }
        for (size_t s = 0; s < N_SERIES; s++)
                for (size_t i = 0; last[s].seen && i < last[s].fc.n_present; i++)
                        chorus_state_model_stats(st, last[s].fc.series, last[s].fc.horizon,
                                                 last[s].fc.present[i], last[s].fc.issued_at,
                                                 &last[s].stats[i]);
        chorus_state_destroy(st);
        return 0;
}

/* ------------------------------------------------------------------ */
/* Entry point                                                         */
/* ------------------------------------------------------------------ */

static int demo_config(chorus_config_t *cfg, const char *bootstrap, int redis_port, char *errstr,
                       size_t errstr_size) {
        char port[16];
        const char *settings[][2] = {
            {"kafka.bootstrap.servers", bootstrap},
            {"kafka.log_level", "3"}, /* the mock cluster's notices are noise here */
            {"redis.port", port},
            {"join.max_wait_ms", "1000"},
            {"alerts.enabled", "1"},
            {"log.level", "warn"},
        };

        snprintf(port, sizeof(port), "%d", redis_port);
        for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
                if (chorus_config_set(cfg, settings[i][0], settings[i][1], errstr, errstr_size))
                        return -1;
        return chorus_config_finalize(cfg, errstr, errstr_size) ? -1 : 0;
}

int chorus_cmd_demo(int argc, char **argv) {
        /* Schemas are registered for the first four: the records the demo writes and reads. */
        static const chorus_topic_role_t topics[] = {
            CHORUS_TOPIC_PREDICTIONS, CHORUS_TOPIC_ACTUALS,    CHORUS_TOPIC_FORECASTS,
            CHORUS_TOPIC_ALERTS,      CHORUS_TOPIC_VALIDATION, CHORUS_TOPIC_FEATURE_IMPORTANCE,
            CHORUS_TOPIC_DLQ};
        static volatile sig_atomic_t never;
        static chorus_forecast_t forecast; /* records are large: not on the stack */
        static chorus_alert_t alert;
        static alert_log_t alerts;
        chorus_redis_server_t redis = {0};
        chorus_config_t *cfg = chorus_config_new();
        last_forecast_t last[N_SERIES];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        chorus_worker_t *w = NULL;
        demo_t d = {0};
        char errstr[512], bootstrap[256];
        struct timespec t0, t1;
        long n_forecasts;
        int rc = 1;

        memset(last, 0, sizeof(last));
        d.days = 120;
        for (int i = 1; i < argc - 1; i++)
                if (!strcmp(argv[i], "--days"))
                        d.days = atoi(argv[i + 1]);
        if (d.days < 2 || d.days > 100000) {
                fprintf(stderr, "chorus demo: --days must be in [2, 100000]\n");
                goto done;
        }
        chorus_log_level = CHORUS_LOG_WARN;
        clock_gettime(CLOCK_MONOTONIC, &t0);

        printf("starting a private redis-server and an in-process Kafka cluster...\n");
        if (chorus_redis_server_start(&redis, errstr, sizeof(errstr))) {
                fprintf(stderr,
                        "chorus demo: redis: %s\n(install it with: apt-get install "
                        "redis-server)\n",
                        errstr);
                goto done;
        }
        if (rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) ||
            !(d.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, "chorus demo: kafka: %s\n", errstr);
                goto done;
        }
        d.mcluster = rd_kafka_handle_mock_cluster(d.producer);
        snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(d.mcluster));
        if (demo_config(cfg, bootstrap, redis.port, errstr, sizeof(errstr))) {
                fprintf(stderr, "chorus demo: config: %s\n", errstr);
                goto done;
        }
        d.cfg = cfg;
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                rd_kafka_mock_topic_create(d.mcluster, cfg->topics[topics[i]].name, 3, 1);
        if (!(d.codec = chorus_codec_new(errstr, sizeof(errstr)))) {
                fprintf(stderr, "chorus demo: codec: %s\n", errstr);
                goto done;
        }
        for (size_t i = 0; i < 4; i++)
                chorus_codec_register(
                    d.codec, cfg->topics[topics[i]].schema_id, cfg->topics[topics[i]].type,
                    chorus_record_schema_json(cfg->topics[topics[i]].type), errstr, sizeof(errstr));

        printf("generating %d days of actuals and predictions for %zu series x %zu models...\n",
               d.days, N_SERIES, N_MODELS);
        if (generate(&d) || generate_bad_input(&d))
                goto done;
        rd_kafka_flush(d.producer, 30000);

        printf("running the worker until the input is drained...\n");
        if (!(w = chorus_worker_new(cfg, errstr, sizeof(errstr)))) {
                fprintf(stderr, "chorus demo: worker: %s\n", errstr);
                goto done;
        }
        if (chorus_worker_run(w, &never, 3000))
                goto done;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        n_forecasts = read_topic(&d, bootstrap, CHORUS_TOPIC_FORECASTS, CHORUS_RECORD_FORECAST,
                                 &forecast, keep_last, last);
        if (model_stats(cfg, last) ||
            read_topic(&d, bootstrap, CHORUS_TOPIC_ALERTS, CHORUS_RECORD_ALERT, &alert, log_alert,
                       &alerts) < 0)
                goto done;
        print_summary(chorus_worker_stats(w), n_forecasts, last,
                      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        print_alerts(&alerts);
        rc = n_forecasts > 0 ? 0 : 1;

done:
        chorus_worker_destroy(w);
        chorus_codec_destroy(d.codec);
        chorus_buf_destroy(&d.buf);
        if (d.producer)
                rd_kafka_destroy(d.producer);
        chorus_redis_server_stop(&redis);
        chorus_config_destroy(cfg);
        return rc;
}
