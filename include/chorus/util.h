/*
 * Small helpers every module uses: the errstr convention and growable arrays.
 */
#ifndef CHORUS_UTIL_H
#define CHORUS_UTIL_H

#include <stddef.h>

/** @brief printf into @p errstr (if non-NULL and non-empty). */
void chorus_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * @brief Ensure the array @p p of elements of @p elem bytes has room for
 *        @p need elements, doubling *@p cap as needed.
 * @returns the (possibly moved) array. Aborts on out-of-memory: a worker
 *          that cannot allocate a batch cannot make progress, and the
 *          supervisor's restart is the recovery.
 */
void *chorus_grow(void *p, size_t *cap, size_t need, size_t elem);

#endif /* CHORUS_UTIL_H */
