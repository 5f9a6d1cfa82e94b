/*
 * The worker's metric families and health state (include/chorus/telemetry.h).
 *
 * Invariants:
 *  - Every family is declared in chorus_telemetry_new(), before any HTTP
 *    thread exists, so a scrape shows each one (with 0s) from the start.
 *  - Health fields are atomics written by the worker's thread only; the
 *    readiness reason is a pointer to a string literal, so reading it needs
 *    no lock.
 *  - Series looked up on the per-record path (records in, by partition)
 *    are cached by (topic pointer, partition): the topic names are the
 *    configuration's, stable for the worker's life.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chorus/telemetry.h"

#define IN_CACHE_MAX 64

typedef struct in_cache {
        const char *topic;
        int32_t partition;
        chorus_series_t *series;
} in_cache_t;

struct chorus_telemetry_s {
        const chorus_config_t *cfg;
        chorus_metrics_t *m;
        int64_t liveness_ms;
        int kafka_stats;

        chorus_metric_t *records_in, *records_out, *dead_letters, *lag, *redis_trips, *transactions,
            *rebalances, *alerts;
        chorus_series_t *batch_records, *batch_seconds, *redis_seconds, *redis_ok, *redis_err,
            *holds, *waiting, *late, *txn_commit, *txn_abort, *reb_assign, *reb_revoke, *assigned,
            *ready, *kafka_up_g;
        chorus_series_t *dlq_by_reason[CHORUS_ERR__COUNT];
        chorus_series_t *dlq_truncated, *dlq_dropped;

        in_cache_t in_cache[IN_CACHE_MAX];
        size_t n_in_cache;

        atomic_int_fast64_t heartbeat_ms;
        atomic_int redis_up; /* -1 unknown, 0 down, 1 up */
        atomic_int kafka_up; /* -1 unknown (no statistics yet), 0, 1 */
        atomic_int n_assigned;
        _Atomic(const char *) backoff;
};

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Families                                                            */
/* ------------------------------------------------------------------ */

static const double batch_record_bounds[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static chorus_series_t *scalar(chorus_metrics_t *m, chorus_metric_type_t type, const char *name,
                               const char *help, const double *bounds, size_t n_bounds) {
        return chorus_metric_series0(
            chorus_metrics_add(m, type, name, help, 0, NULL, bounds, n_bounds));
}

static chorus_series_t *labelled(chorus_metric_t *f, const char *value) {
        const char *v[] = {value};
        return chorus_metric_series(f, v);
}

chorus_telemetry_t *chorus_telemetry_new(const chorus_config_t *cfg, int64_t liveness_ms,
                                         int kafka_stats) {
        chorus_telemetry_t *tm = calloc(1, sizeof(*tm));
        static const char *const topic_partition[] = {"topic", "partition"};
        static const char *const topic[] = {"topic"};
        static const char *const reason[] = {"reason"};
        static const char *const result[] = {"result"};
        static const char *const type[] = {"type"};
        static const char *const version[] = {"version"};
        chorus_metrics_t *m;

        if (!tm) {
                fprintf(stderr, "chorus: out of memory (telemetry)\n");
                abort();
        }
        tm->cfg = cfg;
        tm->liveness_ms = liveness_ms;
        tm->kafka_stats = kafka_stats;
        m = tm->m = chorus_metrics_new();
        atomic_init(&tm->heartbeat_ms, mono_ms());
        atomic_init(&tm->redis_up, -1);
        atomic_init(&tm->kafka_up, -1);
        atomic_init(&tm->n_assigned, 0);
        atomic_init(&tm->backoff, NULL);

        {
                chorus_metric_t *f = chorus_metrics_add(m, CHORUS_METRIC_GAUGE, "chorus_build_info",
                                                        "Always 1; the version of this worker.", 1,
                                                        version, NULL, 0);
                const char *v[] = {CHORUS_VERSION_STRING};
                chorus_series_set(chorus_metric_series(f, v), 1);
        }
        tm->ready =
            scalar(m, CHORUS_METRIC_GAUGE, "chorus_ready",
                   "1 while /readyz answers 200, else 0 (sampled at each scrape).", NULL, 0);
        tm->records_in = chorus_metrics_add(m, CHORUS_METRIC_COUNTER, "chorus_records_in_total",
                                            "Input records consumed, by topic and partition.", 2,
                                            topic_partition, NULL, 0);
        tm->records_out = chorus_metrics_add(
            m, CHORUS_METRIC_COUNTER, "chorus_records_out_total",
            "Output records produced (forecasts, dead letters), by topic.", 1, topic, NULL, 0);
        labelled(tm->records_out, cfg->topics[CHORUS_TOPIC_FORECASTS].name);
        labelled(tm->records_out, cfg->topics[CHORUS_TOPIC_DLQ].name);
        tm->dead_letters = chorus_metrics_add(
            m, CHORUS_METRIC_COUNTER, "chorus_dead_letters_total",
            "Dead letters produced, by reason (the chorus.error header).", 1, reason, NULL, 0);
        for (int e = 1; e < CHORUS_ERR__COUNT; e++)
                if (chorus_err_is_input((chorus_err_t)e))
                        tm->dlq_by_reason[e] =
                            labelled(tm->dead_letters, chorus_err2code((chorus_err_t)e));
        tm->dlq_truncated =
            scalar(m, CHORUS_METRIC_COUNTER, "chorus_dead_letters_truncated_total",
                   "Dead letters whose key or value was cut to fit the dead-letter topic "
                   "(chorus.error.truncated=true), counted when their batch commits.",
                   NULL, 0);
        tm->dlq_dropped = scalar(
            m, CHORUS_METRIC_COUNTER, "chorus_dead_letters_dropped_total",
            "Bad records whose dead letter the broker refused even as headers only: not on the "
            "dead-letter topic, logged at error with their source; counted when their batch "
            "commits.",
            NULL, 0);
        tm->batch_records = scalar(m, CHORUS_METRIC_HISTOGRAM, "chorus_batch_records",
                                   "Input records per batch (held and retried ones included).",
                                   batch_record_bounds, NB(batch_record_bounds));
        tm->batch_seconds =
            scalar(m, CHORUS_METRIC_HISTOGRAM, "chorus_batch_duration_seconds",
                   "Time from a batch's first Redis round trip to its commit and release.",
                   latency_bounds, NB(latency_bounds));
        tm->redis_trips = chorus_metrics_add(
            m, CHORUS_METRIC_COUNTER, "chorus_redis_round_trips_total",
            "Pipelined Redis round trips of batches, by result (ok, error).", 1, result, NULL, 0);
        tm->redis_ok = labelled(tm->redis_trips, "ok");
        tm->redis_err = labelled(tm->redis_trips, "error");
        tm->redis_seconds =
            scalar(m, CHORUS_METRIC_HISTOGRAM, "chorus_redis_round_trip_duration_seconds",
                   "Duration of one pipelined Redis round trip (a whole batch's state calls).",
                   latency_bounds, NB(latency_bounds));
        tm->lag = chorus_metrics_add(m, CHORUS_METRIC_GAUGE, "chorus_consumer_lag",
                                     "Records not yet consumed, per assigned input partition: the "
                                     "read_committed log end minus the consume position "
                                     "(librdkafka statistics).",
                                     2, topic_partition, NULL, 0);
        tm->holds =
            scalar(m, CHORUS_METRIC_COUNTER, "chorus_holds_total",
                   "Times a prediction was held for its series' actuals (SPEC 9.2).", NULL, 0);
        tm->waiting = scalar(m, CHORUS_METRIC_GAUGE, "chorus_held_predictions",
                             "Records waiting in the worker for a later batch (held "
                             "predictions and retried records).",
                             NULL, 0);
        tm->late = scalar(m, CHORUS_METRIC_COUNTER, "chorus_late_records_total",
                          "Records applied with an event time older than their stream's "
                          "newest (SPEC §1 late records; counted with alerts.enabled).",
                          NULL, 0);
        tm->transactions = chorus_metrics_add(
            m, CHORUS_METRIC_COUNTER, "chorus_transactions_total",
            "Kafka transactions (at_least_once: offset commits), by result (committed, aborted).",
            1, result, NULL, 0);
        tm->txn_commit = labelled(tm->transactions, "committed");
        tm->txn_abort = labelled(tm->transactions, "aborted");
        tm->rebalances = chorus_metrics_add(m, CHORUS_METRIC_COUNTER, "chorus_rebalances_total",
                                            "Consumer-group rebalances seen, by type (assign, "
                                            "revoke).",
                                            1, type, NULL, 0);
        tm->reb_assign = labelled(tm->rebalances, "assign");
        tm->reb_revoke = labelled(tm->rebalances, "revoke");
        {
                static const char *const alert_labels[] = {"type", "state", "severity"};
                tm->alerts = chorus_metrics_add(
                    m, CHORUS_METRIC_COUNTER, "chorus_alerts_total",
                    "Alert records produced (SPEC 6), by type, state (firing, resolved) and "
                    "severity; firing minus resolved is what is active.",
                    3, alert_labels, NULL, 0);
        }
        tm->assigned = scalar(m, CHORUS_METRIC_GAUGE, "chorus_assigned_partitions",
                              "Input partitions assigned to this worker.", NULL, 0);
        tm->kafka_up_g =
            scalar(m, CHORUS_METRIC_GAUGE, "chorus_kafka_brokers_up",
                   "Brokers the consumer is connected to (librdkafka statistics).", NULL, 0);
        return tm;
}

void chorus_telemetry_destroy(chorus_telemetry_t *tm) {
        if (!tm)
                return;
        chorus_metrics_destroy(tm->m);
        free(tm);
}

chorus_metrics_t *chorus_telemetry_metrics(chorus_telemetry_t *tm) {
        char reason[128];

        /* chorus_ready is sampled here, by the scraping thread. */
        chorus_series_set(tm->ready, chorus_telemetry_ready(tm, reason, sizeof(reason)));
        return tm->m;
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

void chorus_telemetry_heartbeat(chorus_telemetry_t *tm) {
        if (tm)
                atomic_store_explicit(&tm->heartbeat_ms, mono_ms(), memory_order_relaxed);
}

void chorus_telemetry_record_in(chorus_telemetry_t *tm, const char *topic, int32_t partition) {
        in_cache_t *c;
        char part[16];
        const char *v[2];

        if (!tm)
                return;
        for (size_t i = 0; i < tm->n_in_cache; i++) {
                c = &tm->in_cache[i];
                if (c->topic == topic && c->partition == partition) {
                        chorus_series_add(c->series, 1);
                        return;
                }
        }
        snprintf(part, sizeof(part), "%d", (int)partition);
        v[0] = topic;
        v[1] = part;
        if (tm->n_in_cache == IN_CACHE_MAX) /* more partitions than that: evict the oldest */
                memmove(tm->in_cache, tm->in_cache + 1, (IN_CACHE_MAX - 1) * sizeof(*c)),
                    tm->n_in_cache--;
        c = &tm->in_cache[tm->n_in_cache++];
        c->topic = topic;
        c->partition = partition;
        c->series = chorus_metric_series(tm->records_in, v);
        chorus_series_add(c->series, 1);
}

void chorus_telemetry_record_out(chorus_telemetry_t *tm, const char *topic) {
        if (tm)
                chorus_series_add(labelled(tm->records_out, topic), 1);
}

void chorus_telemetry_dead_letter(chorus_telemetry_t *tm, chorus_err_t reason) {
        if (!tm)
                return;
        if (reason > 0 && reason < CHORUS_ERR__COUNT && tm->dlq_by_reason[reason])
                chorus_series_add(tm->dlq_by_reason[reason], 1);
        else
                chorus_series_add(labelled(tm->dead_letters, chorus_err2code(reason)), 1);
}

void chorus_telemetry_dead_letters_cut(chorus_telemetry_t *tm, uint64_t truncated,
                                       uint64_t dropped) {
        if (!tm)
                return;
        if (truncated)
                chorus_series_add(tm->dlq_truncated, truncated);
        if (dropped)
                chorus_series_add(tm->dlq_dropped, dropped);
}

void chorus_telemetry_batch(chorus_telemetry_t *tm, size_t records, double seconds) {
        if (!tm)
                return;
        chorus_series_observe(tm->batch_records, (double)records);
        chorus_series_observe(tm->batch_seconds, seconds);
}

void chorus_telemetry_redis_round_trip(chorus_telemetry_t *tm, double seconds, int ok) {
        if (!tm)
                return;
        chorus_series_add(ok ? tm->redis_ok : tm->redis_err, 1);
        chorus_series_observe(tm->redis_seconds, seconds);
        atomic_store_explicit(&tm->redis_up, ok ? 1 : 0, memory_order_relaxed);
}

void chorus_telemetry_redis_up(chorus_telemetry_t *tm, int up) {
        if (tm)
                atomic_store_explicit(&tm->redis_up, up ? 1 : 0, memory_order_relaxed);
}

void chorus_telemetry_backoff(chorus_telemetry_t *tm, const char *why) {
        if (tm)
                atomic_store_explicit(&tm->backoff, why, memory_order_release);
}

void chorus_telemetry_hold(chorus_telemetry_t *tm) {
        if (tm)
                chorus_series_add(tm->holds, 1);
}

void chorus_telemetry_waiting(chorus_telemetry_t *tm, size_t n) {
        if (tm)
                chorus_series_set(tm->waiting, (double)n);
}

void chorus_telemetry_late(chorus_telemetry_t *tm) {
        if (tm)
                chorus_series_add(tm->late, 1);
}

void chorus_telemetry_alert(chorus_telemetry_t *tm, const char *type, const char *state,
                            const char *severity) {
        const char *v[3];

        if (!tm)
                return;
        v[0] = type;
        v[1] = state;
        v[2] = severity;
        chorus_series_add(chorus_metric_series(tm->alerts, v), 1);
}

void chorus_telemetry_transaction(chorus_telemetry_t *tm, int committed) {
        if (tm)
                chorus_series_add(committed ? tm->txn_commit : tm->txn_abort, 1);
}

void chorus_telemetry_rebalance(chorus_telemetry_t *tm, int assigned, int n_assigned) {
        if (!tm)
                return;
        chorus_series_add(assigned ? tm->reb_assign : tm->reb_revoke, 1);
        chorus_series_set(tm->assigned, n_assigned);
        atomic_store_explicit(&tm->n_assigned, n_assigned, memory_order_relaxed);
}

/* Is @p name one of the input topics? @returns the configured name or NULL. */
static const char *input_topic(const chorus_telemetry_t *tm, const char *name) {
        static const chorus_topic_role_t inputs[] = {CHORUS_TOPIC_PREDICTIONS,
                                                     CHORUS_TOPIC_ACTUALS};
        for (size_t i = 0; i < NB(inputs); i++)
                if (!strcmp(tm->cfg->topics[inputs[i]].name, name))
                        return tm->cfg->topics[inputs[i]].name;
        return NULL;
}

/* The first of two offsets of a partition's statistics that is known (>= 0), or -1. */
static json_int_t offset_of(json_t *p, const char *first, const char *second) {
        json_int_t v = json_integer_value(json_object_get(p, first));
        if (v < 0)
                v = json_integer_value(json_object_get(p, second));
        return v < 0 ? -1 : v;
}

/*
 * The statistics JSON (librdkafka STATISTICS.md): "brokers" maps names to
 * {"nodeid", "state", ...}, the bootstrap entries having nodeid -1;
 * "topics" maps names to {"partitions": {"<p>": {...offsets...,
 * "fetch_state"}}}, with the internal partition "-1". A partition this
 * consumer does not fetch has fetch_state "none" and its gauge is hidden.
 *
 * The lag is the log end that read_committed can see (ls_offset) minus the
 * consume position (app_offset, else next_offset). librdkafka's own
 * consumer_lag is of no use here: it is computed from offsets the consumer
 * committed itself, and exactly-once commits go through the producer's
 * transaction, so it stays -1.
 */
void chorus_telemetry_kafka_stats(chorus_telemetry_t *tm, const char *json, size_t len) {
        json_t *root, *brokers, *topics, *b, *t;
        const char *name;
        json_error_t jerr;
        int up = 0;

        if (!tm || !(root = json_loadb(json, len, 0, &jerr)))
                return;
        if ((brokers = json_object_get(root, "brokers")))
                json_object_foreach(brokers, name, b) {
                        const char *state = json_string_value(json_object_get(b, "state"));
                        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 && state &&
                            !strcmp(state, "UP"))
                                up++;
                }
        atomic_store_explicit(&tm->kafka_up, up > 0, memory_order_relaxed);
        chorus_series_set(tm->kafka_up_g, up);
        if ((topics = json_object_get(root, "topics")))
                json_object_foreach(topics, name, t) {
                        const char *topic = input_topic(tm, name);
                        json_t *parts = json_object_get(t, "partitions"), *p;
                        const char *pid;

                        if (!topic || !parts)
                                continue;
                        json_object_foreach(parts, pid, p) {
                                const char *fetch =
                                    json_string_value(json_object_get(p, "fetch_state"));
                                json_int_t end = offset_of(p, "ls_offset", "hi_offset");
                                json_int_t pos = offset_of(p, "app_offset", "next_offset");
                                const char *v[] = {topic, pid};
                                chorus_series_t *s;

                                if (!strcmp(pid, "-1"))
                                        continue;
                                s = chorus_metric_series(tm->lag, v);
                                if (!fetch || !strcmp(fetch, "none") || end < 0 || pos < 0) {
                                        chorus_series_show(s, 0);
                                        continue;
                                }
                                chorus_series_set(s, end > pos ? (double)(end - pos) : 0.0);
                                chorus_series_show(s, 1);
                        }
                }
        json_decref(root);
}

/* ------------------------------------------------------------------ */
/* Health                                                              */
/* ------------------------------------------------------------------ */

int chorus_telemetry_alive(chorus_telemetry_t *tm, char *reason, size_t size) {
        int64_t age = mono_ms() - atomic_load_explicit(&tm->heartbeat_ms, memory_order_relaxed);

        if (age > tm->liveness_ms) {
                snprintf(reason, size,
                         "the worker loop has not turned for %" PRId64 " ms (bound %" PRId64 " ms)",
                         age, tm->liveness_ms);
                return 0;
        }
        snprintf(reason, size, "ok");
        return 1;
}

int chorus_telemetry_ready(chorus_telemetry_t *tm, char *reason, size_t size) {
        const char *backoff = atomic_load_explicit(&tm->backoff, memory_order_acquire);
        int redis = atomic_load_explicit(&tm->redis_up, memory_order_relaxed);
        int kafka = atomic_load_explicit(&tm->kafka_up, memory_order_relaxed);

        if (!chorus_telemetry_alive(tm, reason, size))
                return 0;
        if (redis <= 0) {
                snprintf(reason, size, "redis: %s",
                         redis < 0 ? "not connected yet" : "unavailable");
                return 0;
        }
        if (tm->kafka_stats && kafka <= 0) {
                snprintf(reason, size, "kafka: %s",
                         kafka < 0 ? "no statistics yet" : "no broker connection");
                return 0;
        }
        if (atomic_load_explicit(&tm->n_assigned, memory_order_relaxed) <= 0) {
                snprintf(reason, size, "no input partitions assigned");
                return 0;
        }
        if (backoff) {
                snprintf(reason, size, "backing off: %s", backoff);
                return 0;
        }
        snprintf(reason, size, "ok");
        return 1;
}
