/*
 * The batch's global call (SPEC §1 global watermark; §6.3 EXTREME_PREDICTIONS,
 * §6.11 ALERT_STORM): see src/state/lua/78_global.lua.
 *
 * While a batch is handled the worker notes, per stream (input partition,
 * series), the newest event time it applied, the forecasts it served and
 * the critical alerts that started firing. After the series' monitoring
 * calls, one chorus_global call carries them, with the state of the
 * partitions the worker owns, to the one global hash slot, and returns the
 * alerts of the rules evaluated on the global watermark.
 */
#ifndef CHORUS_GLOBAL_H
#define CHORUS_GLOBAL_H

#include <stddef.h>
#include <stdint.h>

#include "chorus/config.h"
#include "chorus/record.h"
#include "chorus/state.h"

typedef struct chorus_global chorus_global_t;

/** The name whose base key is the global slot: reserved, so no series has it. */
#define CHORUS_GLOBAL_SERIES "__global__"

/** @returns a collector for @p cfg (NULL when out of memory). */
chorus_global_t *chorus_global_new(const chorus_config_t *cfg);

/** @brief Free. Accepts NULL. */
void chorus_global_destroy(chorus_global_t *g);

/** @brief Forget the previous batch's notes. */
void chorus_global_reset(chorus_global_t *g);

/** @brief A record of @p series with event time @p t was applied (or found
 *  applied) at @p src. Not for held records or dead letters.
 *  @returns 0, or -1 when out of memory. */
int chorus_global_note_record(chorus_global_t *g, const char *series, const chorus_source_t *src,
                              int64_t t);

/** @brief A forecast was served. @returns 0, or -1 when out of memory. */
int chorus_global_note_forecast(chorus_global_t *g, const chorus_forecast_t *fc);

/** @brief An alert was produced: a critical one that started firing (or
 *  escalated) counts towards ALERT_STORM. @returns 0, or -1 when out of memory. */
int chorus_global_note_alert(chorus_global_t *g, const chorus_alert_t *a);

/** @brief Series @p series' newest actual is @p newest and it is stale
 *  after @p deadline (DATA_STALE). @returns 0, or -1 when out of memory. */
int chorus_global_note_stale(chorus_global_t *g, const char *series, int64_t newest,
                             int64_t deadline);

/** @brief Whether a record applied now with event time @p t is late: older
 *  than the newest this worker applied from its stream (SPEC §1). Kept in
 *  memory across batches, so it undercounts after a rebalance.
 *  @returns 1 if late, 0 if not (or out of memory). */
int chorus_global_late(chorus_global_t *g, const char *series, const chorus_source_t *src,
                       int64_t t);

/** @returns whether a record was noted: only then has the call an anchor for
 *  its outputs (chorus_global_anchor). */
int chorus_global_has_anchor(const chorus_global_t *g);

/** @brief Where the outputs wait for their release (one of the records noted). */
chorus_source_t chorus_global_anchor(const chorus_global_t *g);

/** One input partition the worker owns. */
typedef struct chorus_global_partition {
        const char *topic;
        int32_t partition;
        int64_t epoch;
        int at_end;            /**< consumed to its end, nothing held from it */
        int64_t held_min;      /**< the oldest event time among its held records, or -1 */
        const char *committed; /**< committed batches of its offsets' metadata, or "-" */
} chorus_global_partition_t;

/** One input topic and its partition count. */
typedef struct chorus_global_topic {
        const char *topic;
        int32_t partitions;
} chorus_global_topic_t;

/** @returns whether the partitions' state differs from the one last passed
 *  here (and remembers this one): a batch with nothing applied calls only
 *  to report a change, so that a worker whose partitions are all empty or
 *  idle does not keep the global watermark unknown. */
int chorus_global_partitions_changed(chorus_global_t *g, const chorus_global_partition_t *parts,
                                     size_t n_parts);

/** @brief Queue the chorus_global call of the batch. */
void chorus_global_queue(chorus_global_t *g, chorus_state_t *st, const char *batch_id,
                         const chorus_global_partition_t *parts, size_t n_parts,
                         const chorus_global_topic_t *topics, size_t n_topics);

#endif /* CHORUS_GLOBAL_H */
