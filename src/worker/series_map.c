/*
 * Open addressing with linear probing over FNV-1a hashes; the table stays at
 * most half full, so a miss ends after a few probes. Keys are copied.
 * Entries are only ever added or cleared all at once, so no tombstones.
 */
#include <stdlib.h>
#include <string.h>

#include "series_map.h"

typedef struct slot {
        char *series; /* NULL: empty */
        int64_t wm;
} slot_t;

struct chorus_series_map {
        slot_t *slots;
        size_t cap, n; /* cap is a power of two */
};

static uint32_t fnv1a(const char *s) {
        uint32_t h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

static slot_t *find(slot_t *slots, size_t cap, const char *series) {
        size_t i = fnv1a(series) & (cap - 1);
        while (slots[i].series && strcmp(slots[i].series, series))
                i = (i + 1) & (cap - 1);
        return &slots[i];
}

chorus_series_map_t *chorus_series_map_new(void) {
        chorus_series_map_t *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->cap = 64;
        if (!(m->slots = calloc(m->cap, sizeof(*m->slots)))) {
                free(m);
                return NULL;
        }
        return m;
}

void chorus_series_map_clear(chorus_series_map_t *m) {
        for (size_t i = 0; i < m->cap; i++) {
                free(m->slots[i].series);
                m->slots[i].series = NULL;
        }
        m->n = 0;
}

void chorus_series_map_destroy(chorus_series_map_t *m) {
        if (!m)
                return;
        chorus_series_map_clear(m);
        free(m->slots);
        free(m);
}

int64_t chorus_series_map_get(const chorus_series_map_t *m, const char *series) {
        const slot_t *s = find(m->slots, m->cap, series);
        return s->series ? s->wm : -1;
}

static int grow(chorus_series_map_t *m) {
        size_t cap = m->cap * 2;
        slot_t *slots = calloc(cap, sizeof(*slots));

        if (!slots)
                return -1;
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].series)
                        *find(slots, cap, m->slots[i].series) = m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
        return 0;
}

int chorus_series_map_raise(chorus_series_map_t *m, const char *series, int64_t wm) {
        slot_t *s;

        if ((m->n + 1) * 2 > m->cap && grow(m))
                return -1;
        s = find(m->slots, m->cap, series);
        if (!s->series) {
                if (!(s->series = strdup(series)))
                        return -1;
                s->wm = wm;
                m->n++;
        } else if (wm > s->wm) {
                s->wm = wm;
        }
        return 0;
}
