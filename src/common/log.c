/*
 * Line-oriented key=value logging to stderr. A whole line is formatted into
 * one buffer and written with a single fwrite so that lines from several
 * threads do not interleave.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chorus/log.h"

int chorus_log_level = CHORUS_LOG_INFO;

static const char *level_names[] = {"error", "warn", "info", "debug"};

int chorus_log_level_parse(const char *name) {
        for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
                if (!strcasecmp(name, level_names[i]))
                        return i;
        return -1;
}

void chorus_log_write(int level, const char *facility, const char *fmt, ...) {
        char line[2048];
        struct timespec ts;
        struct tm tm;
        size_t len;
        va_list ap;
        int n;

        if (level < 0 || level > CHORUS_LOG_DEBUG)
                level = CHORUS_LOG_ERROR;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s fac=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], facility);
        len = n < 0 ? 0 : (size_t)n;
        va_start(ap, fmt);
        n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
        va_end(ap);
        if (n > 0)
                len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
        line[len++] = '\n';
        fwrite(line, 1, len, stderr);
}
