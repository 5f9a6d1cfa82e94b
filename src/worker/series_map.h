/*
 * A map from series name to the newest actual watermark this worker has
 * seen for it (from the state functions' replies). Internal to the worker.
 *
 * It is a cache of a value that only grows in Redis (base:aw), so a stale
 * entry is a lower bound: it can delay sending a held prediction by one
 * watermark read, never send one too early.
 */
#ifndef CHORUS_WORKER_SERIES_MAP_H
#define CHORUS_WORKER_SERIES_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chorus_series_map chorus_series_map_t;

/** @returns an empty map (NULL when out of memory). */
chorus_series_map_t *chorus_series_map_new(void);

/** @brief Free. Accepts NULL. */
void chorus_series_map_destroy(chorus_series_map_t *m);

/** @returns the watermark known for @p series, or -1 if none is known. */
int64_t chorus_series_map_get(const chorus_series_map_t *m, const char *series);

/** @brief Raise the watermark known for @p series to @p wm (never lowers it).
 *  @returns 0, or -1 when out of memory (the map is unchanged). */
int chorus_series_map_raise(chorus_series_map_t *m, const char *series, int64_t wm);

/** @brief Forget every series (after a rebalance: another worker may own them). */
void chorus_series_map_clear(chorus_series_map_t *m);

#endif /* CHORUS_WORKER_SERIES_MAP_H */
