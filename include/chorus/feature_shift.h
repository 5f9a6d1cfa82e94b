/*
 * FEATURE_SHIFT (SPEC §6.6): the records of chorus.feature-importance.
 *
 * A record is decoded and checked in the worker (its importances must be
 * normalisable: none negative, a positive finite sum), then applied by one
 * chorus_feature_importance call (src/state/lua/77_feature_shift.lua) in
 * the batch's state round trip. Its state is keyed by model,
 * "<prefix>:{fi|<model>}": the topic is keyed by model, so every record of
 * a model is in one input partition, in order, and its state in one slot.
 * The call stores the record, judges it against the model's records of the
 * previous `alerts.feature_shift.days`, and returns the alert transitions,
 * which leave in the batch's transaction and wait in the state's snapshots
 * until the commit (as forecasts do): exactly once, whichever worker.
 */
#ifndef CHORUS_FEATURE_SHIFT_H
#define CHORUS_FEATURE_SHIFT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "chorus/codec.h"
#include "chorus/config.h"
#include "chorus/err.h"
#include "chorus/record.h"
#include "chorus/state.h"

typedef struct chorus_feature_shift chorus_feature_shift_t;

/** @returns the module's scratch for @p cfg (borrowed; it must outlive it),
 *  or NULL when out of memory. */
chorus_feature_shift_t *chorus_feature_shift_new(const chorus_config_t *cfg);

/** @brief Free. Accepts NULL. */
void chorus_feature_shift_destroy(chorus_feature_shift_t *fs);

/**
 * @brief Normalise @p fi's importances to sum to 1 into @p out (aligned
 *        with fi->feature[]): each divided by their sum, summed in name
 *        order, so the bits are the same in every run.
 * @returns CHORUS_OK, or CHORUS_ERR_BAD_IMPORTANCES (a dead letter,
 *          "invalid_importances") when a value is negative, or the sum is
 *          not positive (no feature, or all 0) or not finite, with the
 *          reason in @p errstr.
 */
chorus_err_t chorus_feature_shift_normalise(const chorus_feature_importance_t *fi, double *out,
                                            char *errstr, size_t errstr_size);

/**
 * @brief Decode and check one message value of the feature-importance topic
 *        @p t into the module's current record (codec errors and
 *        chorus_feature_shift_normalise()'s).
 * @returns CHORUS_OK or an input error, with the reason in @p errstr.
 */
chorus_err_t chorus_feature_shift_decode(chorus_feature_shift_t *fs, chorus_codec_t *codec,
                                         const chorus_topic_conf_t *t, const void *value,
                                         size_t len, char *errstr, size_t errstr_size);

/** @returns the record of the last successful chorus_feature_shift_decode(). */
const chorus_feature_importance_t *chorus_feature_shift_record(const chorus_feature_shift_t *fs);

/** @brief Queue chorus_feature_importance for the current record, read at @p src. */
void chorus_feature_shift_queue(const chorus_feature_shift_t *fs, chorus_state_t *st,
                                const chorus_source_t *src, const char *batch_id);

/** @brief Queue chorus_release for model @p model's base key: its alert
 *         snapshots of @p topic/@p partition up to @p offset are committed. */
void chorus_feature_shift_queue_release(chorus_state_t *st, const char *model, const char *topic,
                                        int32_t partition, int64_t offset);

/** Status of a chorus_feature_importance reply. */
typedef enum chorus_fs_status {
        CHORUS_FS_APPLIED = 0, /**< stored and judged */
        CHORUS_FS_UNJUDGED,    /**< stored; no reference yet (no record in the days before) */
        CHORUS_FS_LATE,        /**< stored; older than the stream's newest record: not judged */
        CHORUS_FS_REEMIT,      /**< applied before, alerts not committed yet: produce again */
        CHORUS_FS_REPLAYED,    /**< applied before, nothing to produce */
        CHORUS_FS_FENCED,      /**< the partition has a newer owner */
        CHORUS_FS_ERROR,       /**< an error reply or an unexpected shape */
} chorus_fs_status_t;

/** @returns the status of a chorus_feature_importance reply; for the
 *  statuses that carry alerts, every element after the first is an array. */
chorus_fs_status_t chorus_feature_shift_reply_status(const redisReply *r);

/** @returns the number of alerts in a reply (0 unless it carries some). */
size_t chorus_feature_shift_reply_alerts(const redisReply *r);

/** @brief Alert @p i of a reply into @p out.
 *  @returns CHORUS_OK, or CHORUS_ERR_STATE if it is malformed. */
chorus_err_t chorus_feature_shift_reply_alert(const redisReply *r, size_t i, chorus_alert_t *out);

#endif /* CHORUS_FEATURE_SHIFT_H */
