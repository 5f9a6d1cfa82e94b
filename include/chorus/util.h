/*
 * Small helpers every module uses: the errstr convention, growable arrays,
 * host:port parsing.
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

/**
 * @brief Split "host:port" or "[ipv6]:port" into @p host (without brackets)
 *        and @p port (decimal, 0 to 65535). Nothing is resolved.
 * @returns 0, or -1 with the reason in @p errstr.
 */
int chorus_hostport_split(const char *listen, char *host, size_t host_size, char *port,
                          size_t port_size, char *errstr, size_t errstr_size);

#endif /* CHORUS_UTIL_H */
