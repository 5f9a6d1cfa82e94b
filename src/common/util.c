/*
 * Shared helpers: the errstr convention, growable arrays, host:port parsing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/util.h"

void chorus_seterr(char *errstr, size_t errstr_size, const char *fmt, ...) {
        va_list ap;

        if (!errstr || !errstr_size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
}

void *chorus_grow(void *p, size_t *cap, size_t need, size_t elem) {
        size_t ncap;
        void *np;

        if (need <= *cap)
                return p;
        ncap = *cap ? *cap : 16;
        while (ncap < need)
                ncap *= 2;
        np = realloc(p, ncap * elem);
        if (!np) {
                fputs("chorus: out of memory\n", stderr);
                abort();
        }
        *cap = ncap;
        return np;
}

int chorus_hostport_split(const char *listen, char *host, size_t host_size, char *port,
                          size_t port_size, char *errstr, size_t errstr_size) {
        const char *colon, *h = listen, *h_end;
        char *end;
        long p;

        if (*listen == '[') {
                h = listen + 1;
                if (!(h_end = strchr(h, ']')) || h_end[1] != ':') {
                        snprintf(errstr, errstr_size, "expected [address]:port");
                        return -1;
                }
                colon = h_end + 1;
        } else {
                if (!(colon = strrchr(listen, ':'))) {
                        snprintf(errstr, errstr_size, "expected host:port");
                        return -1;
                }
                h_end = colon;
        }
        if (h_end == h || (size_t)(h_end - h) >= host_size) {
                snprintf(errstr, errstr_size, "the host part is empty or too long");
                return -1;
        }
        memcpy(host, h, (size_t)(h_end - h));
        host[h_end - h] = '\0';
        p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p < 0 || p > 65535) {
                snprintf(errstr, errstr_size, "the port must be 0 to 65535");
                return -1;
        }
        snprintf(port, port_size, "%ld", p);
        return 0;
}
