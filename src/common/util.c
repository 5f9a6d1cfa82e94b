/*
 * Shared helpers: the errstr convention and growable arrays.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
