/*
 * The worker's metrics and health, as the HTTP endpoints show them
 * (SPEC §10: /metrics, /healthz, /readyz).
 *
 * The worker reports events through the functions below; every one accepts
 * a NULL telemetry and then does nothing, so a worker without endpoints
 * (the demo, tests) needs no branches. They are called from the worker's
 * thread (the librdkafka statistics callback included, which runs inside
 * the consumer poll); the HTTP server's threads only read. None of them
 * blocks on a reader.
 *
 * Counters count events as they happen: records produced inside a
 * transaction that later aborts are counted, and so are records consumed
 * again after the rewind (chorus_transactions_total{result="aborted"} says
 * how often that happened).
 */
#ifndef CHORUS_TELEMETRY_H
#define CHORUS_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "chorus/config.h"
#include "chorus/err.h"
#include "chorus/metrics.h"

typedef struct chorus_telemetry_s chorus_telemetry_t;

/**
 * @brief Create the worker's metric families and a health state that reads
 *        "starting" until the worker reports.
 * @param liveness_ms /healthz fails once the loop has not turned for this long.
 * @param kafka_stats whether librdkafka statistics will arrive (the Kafka
 *        connection check of /readyz needs them; without, it is skipped).
 * @remark @p cfg is borrowed (topic names) and must outlive the telemetry.
 * @returns never NULL (aborts on out-of-memory).
 */
chorus_telemetry_t *chorus_telemetry_new(const chorus_config_t *cfg, int64_t liveness_ms,
                                         int kafka_stats);

/** @brief Free. Accepts NULL. Stop the HTTP server first. */
void chorus_telemetry_destroy(chorus_telemetry_t *tm);

/** @returns the registry that /metrics renders. */
chorus_metrics_t *chorus_telemetry_metrics(chorus_telemetry_t *tm);

/* ---- events (NULL @p tm: no-op) ---------------------------------------- */

/** @brief The loop turned: /healthz's heartbeat. */
void chorus_telemetry_heartbeat(chorus_telemetry_t *tm);

/** @brief One input record consumed from @p topic / @p partition. */
void chorus_telemetry_record_in(chorus_telemetry_t *tm, const char *topic, int32_t partition);

/** @brief One output record produced to @p topic. */
void chorus_telemetry_record_out(chorus_telemetry_t *tm, const char *topic);

/** @brief One dead letter produced, for @p reason. */
void chorus_telemetry_dead_letter(chorus_telemetry_t *tm, chorus_err_t reason);

/** @brief A batch committed with @p truncated dead letters cut to fit and
 *  @p dropped records whose dead letter was refused even as headers only. */
void chorus_telemetry_dead_letters_cut(chorus_telemetry_t *tm, uint64_t truncated,
                                       uint64_t dropped);

/** @brief A batch of @p records input records took @p seconds (consume excluded). */
void chorus_telemetry_batch(chorus_telemetry_t *tm, size_t records, double seconds);

/** @brief One pipelined Redis round trip of @p seconds; @p ok 0 when it failed. */
void chorus_telemetry_redis_round_trip(chorus_telemetry_t *tm, double seconds, int ok);

/** @brief Whether Redis answers (set by round trips and idle pings). */
void chorus_telemetry_redis_up(chorus_telemetry_t *tm, int up);

/** @brief Backing off and retrying because of @p why (a string literal: kept,
 *  not copied), or NULL: not any more. */
void chorus_telemetry_backoff(chorus_telemetry_t *tm, const char *why);

/** @brief A prediction was held (waiting for its series' actuals). */
void chorus_telemetry_hold(chorus_telemetry_t *tm);

/** @brief Records held or retried in the worker now, waiting for a later batch. */
void chorus_telemetry_waiting(chorus_telemetry_t *tm, size_t n);

/** @brief A late record was applied (SPEC §1): older than its stream's
 *  newest event time this worker applied. */
void chorus_telemetry_late(chorus_telemetry_t *tm);

/** @brief An alert record produced (SPEC §6): its @p type, @p state
 *  (firing, resolved) and @p severity. */
void chorus_telemetry_alert(chorus_telemetry_t *tm, const char *type, const char *state,
                            const char *severity);

/** @brief A transaction (or, at_least_once, an offset commit) committed (@p ok) or aborted. */
void chorus_telemetry_transaction(chorus_telemetry_t *tm, int committed);

/** @brief A rebalance: @p assigned partitions assigned (1) or revoked (0);
 *  @p n_assigned the partitions this worker holds afterwards. */
void chorus_telemetry_rebalance(chorus_telemetry_t *tm, int assigned, int n_assigned);

/** @brief librdkafka statistics of the consumer (its stats_cb JSON):
 *  consumer lag per assigned partition and whether a broker is up. */
void chorus_telemetry_kafka_stats(chorus_telemetry_t *tm, const char *json, size_t len);

/* ---- health (any thread) ----------------------------------------------- */

/** @returns 1 when the loop turned within the liveness bound; else 0 with the reason. */
int chorus_telemetry_alive(chorus_telemetry_t *tm, char *reason, size_t size);

/** @returns 1 when ready (connected to Kafka and Redis, partitions assigned,
 *  not backing off); else 0 with the reason. */
int chorus_telemetry_ready(chorus_telemetry_t *tm, char *reason, size_t size);

#endif /* CHORUS_TELEMETRY_H */
