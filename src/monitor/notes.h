/*
 * What the monitor's and the global call's collectors share: a growable
 * array and the per-partition offset ranges of the records a batch noted
 * (where their snapshots are looked for again). Internal to src/monitor/.
 */
#ifndef CHORUS_MONITOR_NOTES_H
#define CHORUS_MONITOR_NOTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/state.h"

/* Offsets lo..hi of one input partition's noted records. */
typedef struct range {
        const char *topic;
        int32_t partition;
        int64_t lo, hi;
} range_t;

/* Grows *arr (of *cap elements of size) to hold one more than n.
 * Returns -1 when out of memory (the array is unchanged): the record that
 * needed it fails and is retried, the worker does not abort. */
static inline int notes_grow(void **arr, size_t n, size_t *cap, size_t size) {
        size_t c;
        void *p;

        if (n < *cap)
                return 0;
        c = *cap ? 2 * *cap : 16;
        if (!(p = realloc(*arr, c * size)))
                return -1;
        *arr = p;
        *cap = c;
        return 0;
}

/* Widens the range of @p src's partition to its offset, or adds one.
 * Returns 0, or -1 when out of memory. */
static inline int notes_add_range(range_t **ranges, size_t *n, size_t *cap,
                                  const chorus_source_t *src) {
        for (size_t i = 0; i < *n; i++) {
                range_t *r = &(*ranges)[i];
                if (r->partition == src->partition && !strcmp(r->topic, src->topic)) {
                        if (src->offset < r->lo)
                                r->lo = src->offset;
                        if (src->offset > r->hi)
                                r->hi = src->offset;
                        return 0;
                }
        }
        if (notes_grow((void **)ranges, *n, cap, sizeof(**ranges)))
                return -1;
        (*ranges)[(*n)++] = (range_t){src->topic, src->partition, src->offset, src->offset};
        return 0;
}

#endif /* CHORUS_MONITOR_NOTES_H */
