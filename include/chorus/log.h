/*
 * Logging: one line per event, `ts=... level=... fac=... msg="..." k=v`.
 *
 * The macros test the level before any argument is evaluated or formatted,
 * so debug logging on a hot path costs one branch when it is off.
 */
#ifndef CHORUS_LOG_H
#define CHORUS_LOG_H

#include <stdarg.h>

typedef enum chorus_log_level {
        CHORUS_LOG_ERROR = 0,
        CHORUS_LOG_WARN = 1,
        CHORUS_LOG_INFO = 2,
        CHORUS_LOG_DEBUG = 3,
} chorus_log_level_t;

/** Current level; lines above it are skipped. Default: CHORUS_LOG_INFO. */
extern int chorus_log_level;

/** @brief Parse "error"/"warn"/"info"/"debug". @returns level or -1. */
int chorus_log_level_parse(const char *name);

/** @brief Write one line to stderr. @p fmt should produce `msg="..." k=v ...`.
 *  @remark Use the macros below, which check the level first. */
void chorus_log_write(int level, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define chorus_log(level, fac, ...)                                                                \
        do {                                                                                       \
                if ((level) <= chorus_log_level)                                                   \
                        chorus_log_write((level), (fac), __VA_ARGS__);                             \
        } while (0)

#define chorus_log_error(fac, ...) chorus_log(CHORUS_LOG_ERROR, fac, __VA_ARGS__)
#define chorus_log_warn(fac, ...)  chorus_log(CHORUS_LOG_WARN, fac, __VA_ARGS__)
#define chorus_log_info(fac, ...)  chorus_log(CHORUS_LOG_INFO, fac, __VA_ARGS__)
#define chorus_log_debug(fac, ...) chorus_log(CHORUS_LOG_DEBUG, fac, __VA_ARGS__)

#endif /* CHORUS_LOG_H */
