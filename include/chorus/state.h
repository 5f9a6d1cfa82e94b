/*
 * Redis state: the connection, the server-side functions (src/state/chorus.lua),
 * and one pipelined round trip per batch.
 *
 * A batch is built with chorus_state_add_*(), sent with
 * chorus_state_batch_exec(), and its replies read with
 * chorus_state_batch_reply() until the next chorus_state_batch_begin().
 * The commands of a batch are kept until then, so a batch that failed on a
 * connection error can be sent again after a reconnect: the functions'
 * per-partition offset watermark makes the repeat a no-op for records that
 * were applied the first time.
 */
#ifndef CHORUS_STATE_H
#define CHORUS_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "chorus/config.h"
#include "chorus/err.h"
#include "chorus/forecast.h"
#include "chorus/record.h"

typedef struct chorus_state_s chorus_state_t;

/**
 * @brief Connect to Redis (redis.* keys of @p cfg) and load the functions.
 * @remark @p cfg is borrowed and must outlive the state.
 * @returns NULL with the reason in @p errstr.
 */
chorus_state_t *chorus_state_new(const chorus_config_t *cfg, char *errstr, size_t errstr_size);

/** @brief Close and free. Accepts NULL. */
void chorus_state_destroy(chorus_state_t *st);

/** @brief Drop the connection (if any) and connect again, loading the functions.
 *  @returns CHORUS_OK or CHORUS_ERR_REDIS. */
chorus_err_t chorus_state_reconnect(chorus_state_t *st, char *errstr, size_t errstr_size);

/**
 * @brief Check that the server keeps state safely, once at worker start.
 *
 * Reads `CONFIG GET maxmemory-policy`: anything but `noeviction` is refused,
 * `volatile-*` included (Chorus gives its short-lived hold markers a TTL,
 * and evicting one early would reorder a batch). Warns (log) when
 * persistence is off: `appendonly no` and an empty `save`. When CONFIG is
 * unavailable (renamed or forbidden, as on managed services) it warns and
 * returns CHORUS_OK.
 * @returns CHORUS_OK, CHORUS_ERR_CONFIG (evicting policy, reason in
 *          @p errstr) or CHORUS_ERR_REDIS (connection failed).
 */
chorus_err_t chorus_state_check_server(chorus_state_t *st, char *errstr, size_t errstr_size);

/** @brief PING outside any batch, connecting first if the connection was
 *  dropped. @returns CHORUS_OK or CHORUS_ERR_REDIS (the connection is dropped). */
chorus_err_t chorus_state_ping(chorus_state_t *st, char *errstr, size_t errstr_size);

/** @brief Start a new batch, freeing the previous batch's commands and replies. */
void chorus_state_batch_begin(chorus_state_t *st, const char *batch_id);

/** Where an input record comes from, and the claim of its worker on that
 *  partition: every write call carries them. */
typedef struct chorus_source {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t epoch;                 /**< the partition's epoch (chorus_state_take_epochs) */
        const char *committed_batches; /**< ids in the partition's commit metadata, comma-separated,
                                          or "-" */
} chorus_source_t;

/** @brief Queue one command of @p argc arguments (FCALL ... for the other
 *  modules' functions, such as src/monitor/). */
void chorus_state_add_command(chorus_state_t *st, int argc, const char **argv);

/** @brief The series' base key, "<prefix>:{<series>}". */
/** Bytes of a base key "<prefix>:{<series>}" with its NUL: a prefix of at
 *  most 64 bytes (redis.key_prefix) and a name of at most CHORUS_NAME_MAX.
 *  A shorter buffer would cut two long names to the same key. */
#define CHORUS_BASE_KEY_MAX (64 + 2 + CHORUS_NAME_MAX + 1 + 1)

void chorus_state_base_key(const chorus_state_t *st, char *buf, size_t size, const char *series);

/** @returns the functions' validation argument ("-" when monitoring is off). */
const char *chorus_state_validation(const chorus_state_t *st);

/** @brief Queue chorus_actual for @p a. */
void chorus_state_add_actual(chorus_state_t *st, const chorus_actual_t *a,
                             const chorus_source_t *src, int64_t bucket);

/** @brief Queue chorus_prediction. @p force skips the hold (join.max_wait elapsed).
 *  @p want_expected asks for the publishers list (no configured model list). */
void chorus_state_add_prediction(chorus_state_t *st, const chorus_prediction_t *p,
                                 const chorus_source_t *src, int64_t bucket, int force,
                                 int want_expected);

/** @brief Queue a read of @p series' actual watermark (newest observed_at
 *  applied; a nil reply while it has none). For held predictions. */
void chorus_state_add_watermark_read(chorus_state_t *st, const char *series);

/**
 * @brief Take a new epoch for each of @p n input partitions (INCR of
 *        "<prefix>:epoch:{<topic>|<partition>}", one round trip), outside any
 *        batch. A worker does this when partitions are assigned to it; the
 *        state functions then refuse calls with an older epoch ("fenced").
 * @returns CHORUS_OK, or CHORUS_ERR_REDIS (retry later).
 */
chorus_err_t chorus_state_take_epochs(chorus_state_t *st, size_t n, const char *const *topics,
                                      const int32_t *partitions, int64_t *epochs, char *errstr,
                                      size_t errstr_size);

/** @brief Queue chorus_release: drop the snapshots of @p series' records from
 *         @p topic/@p partition up to @p offset, whose outputs are committed. */
void chorus_state_add_release(chorus_state_t *st, const char *series, const char *topic,
                              int32_t partition, int64_t offset);

/** @brief Queue chorus_dead_letter_seen: was the dead letter of @p topic/
 *         @p partition/@p offset committed already? Reply "seen" or "new". */
void chorus_state_add_dead_letter_seen(chorus_state_t *st, const char *topic, int32_t partition,
                                       int64_t offset);

/** @brief Queue chorus_dead_letter_done: the dead letter of @p offset is
 *         committed; offsets below @p committed are forgotten. */
void chorus_state_add_dead_letter_done(chorus_state_t *st, const char *topic, int32_t partition,
                                       int64_t committed, int64_t offset);

/** @returns the number of commands queued in the current batch. */
size_t chorus_state_batch_size(const chorus_state_t *st);

/**
 * @brief Send the batch in one pipelined round trip and read every reply.
 * @returns CHORUS_OK, or CHORUS_ERR_REDIS on a connection-level error (the
 *          connection is dropped; reconnect and exec again).
 */
chorus_err_t chorus_state_batch_exec(chorus_state_t *st, char *errstr, size_t errstr_size);

/** @returns the reply of the @p i-th command of the executed batch (owned by the state). */
const redisReply *chorus_state_batch_reply(const chorus_state_t *st, size_t i);

/** Status of a state-function reply. */
typedef enum chorus_apply_status {
        CHORUS_APPLY_APPLIED = 0,
        CHORUS_APPLY_DUPLICATE,
        CHORUS_APPLY_STALE,
        CHORUS_APPLY_REPLAYED,
        CHORUS_APPLY_HOLD,
        CHORUS_APPLY_REEMIT, /**< applied before, output not yet committed: emit again */
        CHORUS_APPLY_FENCED, /**< the partition has a newer owner: this worker is a zombie */
        CHORUS_APPLY_ERROR,  /**< an error reply or an unexpected shape */
} chorus_apply_status_t;

/** @returns the status of a chorus_actual / chorus_prediction reply. */
chorus_apply_status_t chorus_state_reply_status(const redisReply *r);

/** @returns the actual watermark carried by a hold, applied, duplicate or
 *  stale reply, or by a watermark read; -1 when it has none. */
int64_t chorus_state_reply_watermark(const redisReply *r);

/** Reusable memory behind chorus_group_view_t. */
typedef struct chorus_group_scratch {
        chorus_group_model_t *models;
        size_t models_cap;
        const char **publishers;
        size_t publishers_cap;
        chorus_spacing_count_t *spacings;
        size_t spacings_cap;
} chorus_group_scratch_t;

void chorus_group_scratch_destroy(chorus_group_scratch_t *s);

/**
 * @brief Parse an "applied" or "reemit" chorus_prediction reply into @p view.
 *
 * The reply carries no window points, only each model's counts and exact
 * sums and the series' actual aggregates (see chorus.lua), so its size and
 * this parse do not depend on the window's length.
 * @remark The view points into @p r and @p scratch; it is valid until either changes.
 * @returns CHORUS_OK or CHORUS_ERR_STATE (unexpected shape), CHORUS_ERR_NOMEM.
 */
chorus_err_t chorus_state_parse_group(const redisReply *r, const char *series, const char *horizon,
                                      int64_t bucket, chorus_group_scratch_t *scratch,
                                      chorus_group_view_t *view);

/**
 * @returns how many forecasts an "applied" or "reemit" chorus_prediction
 *          reply carries: 1 in the emit.mode=every shape, 0 or more in the
 *          emit.mode=complete shape ({status, {horizon, bucket, revision,
 *          ...}, ...}: the groups the call emits); 0 for any other status.
 */
size_t chorus_state_reply_forecasts(const redisReply *r);

/**
 * @brief Parse the @p k-th forecast of a chorus_prediction reply (see
 *        chorus_state_reply_forecasts) into @p view.
 *
 * In the emit.mode=every shape it is chorus_state_parse_group() with
 * @p horizon and @p bucket (the prediction's); a complete-mode view names
 * its own group's horizon and bucket (a close emits other groups).
 * @returns CHORUS_OK or CHORUS_ERR_STATE.
 */
chorus_err_t chorus_state_parse_forecast(const redisReply *r, size_t k, const char *series,
                                         const char *horizon, int64_t bucket,
                                         chorus_group_scratch_t *scratch,
                                         chorus_group_view_t *view);

/**
 * @brief Parse the score aggregates {n_se, Σse, n_ape, Σape} of one model
 *        (an element of a chorus_prediction reply, or a chorus_model_stats reply).
 * @returns 0, or -1 on an unexpected shape.
 */
int chorus_state_parse_score_agg(const redisReply *r, chorus_score_agg_t *out);

/**
 * @brief Parse the actual aggregates of a chorus_prediction reply
 *        (chorus_window_stats gives the same shape), computing the centred
 *        sums of squares from the exact sums' components (chorus_css_exact).
 * @remark out->spacings points into @p scratch.
 * @returns 0, or -1 on an unexpected shape.
 */
int chorus_state_parse_actual_agg(const redisReply *r, chorus_group_scratch_t *scratch,
                                  chorus_actual_agg_t *out);

/**
 * @brief Window statistics of (@p series, @p horizon, @p model) as of @p asof,
 *        read outside any batch (reports, the demo). Read-only in Redis.
 * @returns CHORUS_OK, CHORUS_ERR_REDIS or CHORUS_ERR_STATE.
 */
chorus_err_t chorus_state_model_stats(chorus_state_t *st, const char *series, const char *horizon,
                                      const char *model, int64_t asof, chorus_model_stats_t *out);

/** @brief floor(t / resolution) * resolution, for t >= 0. */
int64_t chorus_bucket_of(int64_t t, int64_t resolution_ms);

/** @brief Format @p v so that strtod() gives back the same bits ("%.17g"). */
void chorus_format_double(char *buf, size_t size, double v);

#endif /* CHORUS_STATE_H */
