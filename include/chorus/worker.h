/*
 * The worker (`chorus run`): consume input batches, apply them to Redis in
 * one round trip per batch, compute forecasts, produce outputs, and commit
 * input offsets only once those outputs are delivered.
 */
#ifndef CHORUS_WORKER_H
#define CHORUS_WORKER_H

#include <signal.h>
#include <stdint.h>

#include "chorus/config.h"
#include "chorus/err.h"
#include "chorus/telemetry.h"

typedef struct chorus_worker_s chorus_worker_t;

/** Counters since the worker started. */
typedef struct chorus_worker_stats {
        uint64_t records_in[CHORUS_TOPIC__COUNT];  /**< input records by topic role */
        uint64_t records_out[CHORUS_TOPIC__COUNT]; /**< output records by topic role */
        uint64_t dead_letters[CHORUS_ERR__COUNT];  /**< by reason */
        /** Dead letters committed cut (chorus.error.truncated), and records
         *  whose dead letter was refused even as headers only (not produced). */
        uint64_t dead_letters_truncated, dead_letters_dropped;
        uint64_t applied, duplicates, stale, replayed, held;
        uint64_t reemitted;       /**< applied before, output re-created from its snapshot */
        uint64_t aborted_batches; /**< transactions aborted and rewound */
        uint64_t batches, redis_round_trips;
        /** Wall-clock microseconds spent in each phase of the batches: the
         *  state round trip, building and producing the outputs, the commit
         *  (transaction or offsets), and releasing snapshots after it. */
        uint64_t redis_us, produce_us, commit_us, release_us;
        uint64_t redis_max_us, commit_max_us; /**< the longest of each */
        uint64_t batch_max_us; /**< the longest batch, from its first round trip to its release */
} chorus_worker_stats_t;

/**
 * @brief Create a worker: Kafka consumer and producer, codec, Redis state.
 * @remark @p cfg is borrowed and must outlive the worker.
 * @returns NULL with the reason in @p errstr.
 */
chorus_worker_t *chorus_worker_new(const chorus_config_t *cfg, char *errstr, size_t errstr_size);

/**
 * @brief Run until *@p stop becomes non-zero or, if @p idle_exit_ms >= 0,
 *        until no input arrived for that long and no prediction is held.
 * @returns CHORUS_OK, or an error that stopped the worker (logged).
 */
chorus_err_t chorus_worker_run(chorus_worker_t *w, volatile sig_atomic_t *stop,
                               int64_t idle_exit_ms);

/** @returns the worker's counters. */
const chorus_worker_stats_t *chorus_worker_stats(const chorus_worker_t *w);

/**
 * @brief Report to @p tm (metrics, health) from now on; call before
 *        chorus_worker_run(). NULL: report nothing (the default).
 * @remark @p tm is borrowed and must outlive the worker. With telemetry an
 *         idle worker also pings Redis once a second, for /readyz.
 */
void chorus_worker_set_telemetry(chorus_worker_t *w, chorus_telemetry_t *tm);

/** @brief Close the consumer (leaving the group), flush and free. Accepts NULL. */
void chorus_worker_destroy(chorus_worker_t *w);

#endif /* CHORUS_WORKER_H */
