/*
 * Monitoring calls of a batch (SPEC §4 ensemble scoring, §6 alerts).
 *
 * While a batch's replies are handled, the worker notes each series' records
 * that were applied (or found applied before) and the forecasts it served.
 * Then one chorus_monitor call per series records the served forecasts as
 * `__ensemble__` scores, runs the series' day closes, settles its closed
 * validation windows, and returns the alerts and validation windows to
 * produce in the batch's transaction (src/state/lua/75_monitor.lua,
 * 55_validation.lua).
 */
#ifndef CHORUS_MONITOR_H
#define CHORUS_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "chorus/config.h"
#include "chorus/err.h"
#include "chorus/record.h"
#include "chorus/state.h"

typedef struct chorus_monitor chorus_monitor_t;

/** @returns a monitor for @p cfg (NULL when out of memory). */
chorus_monitor_t *chorus_monitor_new(const chorus_config_t *cfg);

/** @brief Free. Accepts NULL. */
void chorus_monitor_destroy(chorus_monitor_t *m);

/** @brief Forget the previous batch's notes. */
void chorus_monitor_reset(chorus_monitor_t *m);

/** @brief A record of @p series at @p src was applied, or found applied
 *  before (replayed, duplicate, stale). Not for held records.
 *  @returns 0, or -1 when out of memory. */
int chorus_monitor_note_record(chorus_monitor_t *m, const char *series, const chorus_source_t *src);

/** @brief A forecast was served (after chorus_monitor_note_record of its
 *  prediction). @returns 0, or -1 when out of memory. */
int chorus_monitor_note_forecast(chorus_monitor_t *m, const chorus_forecast_t *fc,
                                 const chorus_source_t *src);

/** @returns the number of series noted: the calls chorus_monitor_queue adds. */
size_t chorus_monitor_n_series(const chorus_monitor_t *m);

/** Where the anchor of series @p i waits for its release: one of its records. */
typedef struct chorus_monitor_anchor {
        const char *series;
        const char *topic;
        int32_t partition;
        int64_t offset;
} chorus_monitor_anchor_t;

/** @brief Series @p i's anchor (valid until the next reset). */
chorus_monitor_anchor_t chorus_monitor_anchor(const chorus_monitor_t *m, size_t i);

/** @brief Queue one chorus_monitor call per series noted, in order. The
 *  anchor's @p epoch and @p committed_batches are those of its partition. */
void chorus_monitor_queue(chorus_monitor_t *m, chorus_state_t *st, const char *batch_id,
                          void (*source)(void *ctx, const char *topic, int32_t partition,
                                         int64_t *epoch, const char **committed_batches),
                          void *ctx);

/**
 * @brief Read one chorus_monitor reply.
 * @returns CHORUS_OK with *fenced set when a newer owner has the anchor's
 *          partition; CHORUS_ERR_STATE for an unexpected reply.
 */
chorus_err_t chorus_monitor_reply_check(const redisReply *r, int *fenced);

/** @returns the number of outputs (alerts and validation windows) in a checked reply. */
size_t chorus_monitor_reply_outputs(const redisReply *r);

typedef enum chorus_monitor_output {
        CHORUS_MONITOR_ALERT = 0, /**< an Alert for chorus.alerts */
        CHORUS_MONITOR_WINDOW,    /**< a ValidationWindow for chorus.validation */
        CHORUS_MONITOR_STALE,     /**< not an output: the series' DATA_STALE deadline */
} chorus_monitor_output_t;

/** @returns the kind of output @p i of a checked reply. */
chorus_monitor_output_t chorus_monitor_reply_kind(const redisReply *r, size_t i);

/** @brief Output @p i of a checked reply, an alert, into @p out.
 *  @returns CHORUS_OK, or CHORUS_ERR_STATE if it is malformed. */
chorus_err_t chorus_monitor_reply_alert(const redisReply *r, size_t i, chorus_alert_t *out);

/** @brief Output @p i of a checked reply, a validation window, into @p out.
 *  @returns CHORUS_OK, or CHORUS_ERR_STATE if it is malformed. */
chorus_err_t chorus_monitor_reply_window(const redisReply *r, size_t i,
                                         chorus_validation_window_t *out);

/** @brief Output @p i of a checked reply, the series' newest actual and the
 *  instant after which it is stale (DATA_STALE, judged by the global call).
 *  @returns CHORUS_OK, or CHORUS_ERR_STATE if it is malformed. */
chorus_err_t chorus_monitor_reply_stale(const redisReply *r, size_t i, int64_t *newest,
                                        int64_t *deadline);

#endif /* CHORUS_MONITOR_H */
