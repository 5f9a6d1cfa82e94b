/*
 * The metrics registry (include/chorus/metrics.h).
 *
 * Invariants:
 *  - Families and series are never removed or moved before the registry is
 *    destroyed. Each list grows at its head only, by a release store of the
 *    new head after the node is fully built; a renderer loads the head with
 *    acquire and so sees only complete nodes. Creators serialise on
 *    `create_lock`; renderers never take it.
 *  - Every value is an atomic: counters and histogram buckets are integers,
 *    gauges and sums are doubles kept as their bit patterns, so an update
 *    is a relaxed atomic add or store and never waits.
 *  - A render may see one histogram's buckets, count and sum from slightly
 *    different instants (Prometheus' own clients have the same property);
 *    buckets are rendered cumulatively from one pass, so they never
 *    decrease within a scrape.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/metrics.h"

struct chorus_series_s {
        struct chorus_series_s *next;
        const chorus_metric_t *family;
        char *values[CHORUS_METRIC_LABELS_MAX];
        atomic_int shown;
        atomic_uint_fast64_t count; /* counter value; histogram count */
        atomic_uint_fast64_t bits;  /* gauge value; histogram sum (double bits) */
        atomic_uint_fast64_t buckets[CHORUS_METRIC_BUCKETS_MAX]; /* not cumulative */
};

struct chorus_metric_s {
        struct chorus_metric_s *next;
        chorus_metrics_t *registry;
        chorus_metric_type_t type;
        char *name, *help;
        size_t n_labels;
        char *labels[CHORUS_METRIC_LABELS_MAX];
        size_t n_bounds;
        double bounds[CHORUS_METRIC_BUCKETS_MAX];
        _Atomic(chorus_series_t *) series;
};

struct chorus_metrics_s {
        pthread_mutex_t create_lock;
        _Atomic(chorus_metric_t *) families; /* newest first; rendered in declaration order */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n, size);
        if (!p) {
                fprintf(stderr, "chorus: out of memory (metrics)\n");
                abort();
        }
        return p;
}

static char *xstrdup(const char *s) {
        size_t len = strlen(s) + 1;
        char *p = xcalloc(1, len);
        memcpy(p, s, len);
        return p;
}

static uint64_t dbits(double v) {
        uint64_t u;
        memcpy(&u, &v, sizeof(u));
        return u;
}

static double bitsd(uint64_t u) {
        double v;
        memcpy(&v, &u, sizeof(v));
        return v;
}

static int valid_name(const char *s) {
        if (!*s)
                return 0;
        for (const char *p = s; *p; p++) {
                int alpha =
                    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
                if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
                        return 0;
        }
        return 1;
}

static void die(const char *what, const char *name) {
        fprintf(stderr, "chorus: metric %s: %s\n", name, what);
        abort();
}

/* ------------------------------------------------------------------ */
/* Registry                                                            */
/* ------------------------------------------------------------------ */

chorus_metrics_t *chorus_metrics_new(void) {
        chorus_metrics_t *m = xcalloc(1, sizeof(*m));
        pthread_mutex_init(&m->create_lock, NULL);
        atomic_init(&m->families, NULL);
        return m;
}

static void free_series(chorus_series_t *s, size_t n_labels) {
        while (s) {
                chorus_series_t *next = s->next;
                for (size_t i = 0; i < n_labels; i++)
                        free(s->values[i]);
                free(s);
                s = next;
        }
}

void chorus_metrics_destroy(chorus_metrics_t *m) {
        chorus_metric_t *f;

        if (!m)
                return;
        f = atomic_load(&m->families);
        while (f) {
                chorus_metric_t *next = f->next;
                free_series(atomic_load(&f->series), f->n_labels);
                for (size_t i = 0; i < f->n_labels; i++)
                        free(f->labels[i]);
                free(f->name);
                free(f->help);
                free(f);
                f = next;
        }
        pthread_mutex_destroy(&m->create_lock);
        free(m);
}

chorus_metric_t *chorus_metrics_add(chorus_metrics_t *m, chorus_metric_type_t type,
                                    const char *name, const char *help, size_t n_labels,
                                    const char *const *labels, const double *bounds,
                                    size_t n_bounds) {
        chorus_metric_t *f;

        if (!valid_name(name))
                die("invalid name", name);
        if (n_labels > CHORUS_METRIC_LABELS_MAX)
                die("too many labels", name);
        if (type == CHORUS_METRIC_HISTOGRAM ? n_bounds < 1 || n_bounds > CHORUS_METRIC_BUCKETS_MAX
                                            : n_bounds != 0)
                die("bad bucket count", name);
        if (strchr(help, '\n'))
                die("newline in help", name);
        f = xcalloc(1, sizeof(*f));
        f->registry = m;
        f->type = type;
        f->name = xstrdup(name);
        f->help = xstrdup(help);
        f->n_labels = n_labels;
        for (size_t i = 0; i < n_labels; i++) {
                if (!valid_name(labels[i]) || !strcmp(labels[i], "le"))
                        die("invalid label name", name);
                f->labels[i] = xstrdup(labels[i]);
        }
        f->n_bounds = n_bounds;
        for (size_t i = 0; i < n_bounds; i++) {
                if (i && !(bounds[i] > bounds[i - 1]))
                        die("bucket bounds must increase", name);
                f->bounds[i] = bounds[i];
        }
        atomic_init(&f->series, NULL);
        pthread_mutex_lock(&m->create_lock);
        f->next = atomic_load_explicit(&m->families, memory_order_relaxed);
        atomic_store_explicit(&m->families, f, memory_order_release);
        pthread_mutex_unlock(&m->create_lock);
        return f;
}

static chorus_series_t *find_series(chorus_series_t *s, size_t n_labels,
                                    const char *const *values) {
        for (; s; s = s->next) {
                size_t i = 0;
                while (i < n_labels && !strcmp(s->values[i], values[i]))
                        i++;
                if (i == n_labels)
                        return s;
        }
        return NULL;
}

chorus_series_t *chorus_metric_series(chorus_metric_t *f, const char *const *values) {
        chorus_series_t *s = find_series(atomic_load_explicit(&f->series, memory_order_acquire),
                                         f->n_labels, values);

        if (s)
                return s;
        pthread_mutex_lock(&f->registry->create_lock);
        /* Another creator may have added it meanwhile. */
        s = find_series(atomic_load_explicit(&f->series, memory_order_acquire), f->n_labels,
                        values);
        if (!s) {
                s = xcalloc(1, sizeof(*s));
                s->family = f;
                for (size_t i = 0; i < f->n_labels; i++)
                        s->values[i] = xstrdup(values[i]);
                atomic_init(&s->shown, 1);
                atomic_init(&s->count, 0);
                atomic_init(&s->bits, dbits(0.0));
                for (size_t i = 0; i < CHORUS_METRIC_BUCKETS_MAX; i++)
                        atomic_init(&s->buckets[i], 0);
                s->next = atomic_load_explicit(&f->series, memory_order_relaxed);
                atomic_store_explicit(&f->series, s, memory_order_release);
        }
        pthread_mutex_unlock(&f->registry->create_lock);
        return s;
}

chorus_series_t *chorus_metric_series0(chorus_metric_t *f) {
        return chorus_metric_series(f, NULL);
}

/* ------------------------------------------------------------------ */
/* Updates                                                             */
/* ------------------------------------------------------------------ */

void chorus_series_add(chorus_series_t *s, uint64_t n) {
        atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

void chorus_series_set(chorus_series_t *s, double v) {
        atomic_store_explicit(&s->bits, dbits(v), memory_order_relaxed);
}

void chorus_series_observe(chorus_series_t *s, double v) {
        const chorus_metric_t *f = s->family;
        uint_fast64_t old = atomic_load_explicit(&s->bits, memory_order_relaxed);
        size_t i = 0;

        while (i < f->n_bounds && v > f->bounds[i])
                i++;
        if (i < f->n_bounds) /* beyond the last bound: only +Inf (the count) */
                atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
        /* One writer in practice; the loop keeps a second one correct. */
        while (!atomic_compare_exchange_weak_explicit(&s->bits, &old, dbits(bitsd(old) + v),
                                                      memory_order_relaxed, memory_order_relaxed))
                ;
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void chorus_series_show(chorus_series_t *s, int shown) {
        atomic_store_explicit(&s->shown, shown ? 1 : 0, memory_order_relaxed);
}

double chorus_series_value(const chorus_series_t *s) {
        chorus_series_t *m = (chorus_series_t *)s; /* atomics are read through non-const */
        if (s->family->type == CHORUS_METRIC_GAUGE)
                return bitsd(atomic_load_explicit(&m->bits, memory_order_relaxed));
        return (double)atomic_load_explicit(&m->count, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

typedef struct out {
        char *buf;
        size_t len, cap;
} out_t;

static void out_grow(out_t *o, size_t more) {
        if (o->len + more + 1 <= o->cap)
                return;
        while (o->len + more + 1 > o->cap)
                o->cap = o->cap ? o->cap * 2 : 4096;
        o->buf = realloc(o->buf, o->cap);
        if (!o->buf) {
                fprintf(stderr, "chorus: out of memory (metrics)\n");
                abort();
        }
}

static void out_str(out_t *o, const char *s) {
        size_t n = strlen(s);
        out_grow(o, n);
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
}

static void out_ch(out_t *o, char c) {
        out_grow(o, 1);
        o->buf[o->len++] = c;
        o->buf[o->len] = '\0';
}

/* Label values escape backslash, double quote and newline; help text
 * escapes backslash and newline (the exposition format). */
static void out_escaped(out_t *o, const char *s, int quote) {
        for (; *s; s++) {
                if (*s == '\\')
                        out_str(o, "\\\\");
                else if (*s == '\n')
                        out_str(o, "\\n");
                else if (quote && *s == '"')
                        out_str(o, "\\\"");
                else
                        out_ch(o, *s);
        }
}

/* The shortest of %.15g..%.17g that reads back as the same double. */
static void format_double(char *num, size_t size, double v) {
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(num, size, "%.*g", prec, v);
                if (strtod(num, NULL) == v)
                        return;
        }
}

static void out_double(out_t *o, double v) {
        char num[32];

        if (isnan(v))
                out_str(o, "NaN");
        else if (isinf(v))
                out_str(o, v > 0 ? "+Inf" : "-Inf");
        else {
                format_double(num, sizeof(num), v);
                out_str(o, num);
        }
}

static void out_u64(out_t *o, uint64_t v) {
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
        out_str(o, num);
}

/* name{l1="v1",...[,le="b"]} */
static void out_sample_name(out_t *o, const chorus_metric_t *f, const chorus_series_t *s,
                            const char *suffix, const char *le) {
        out_str(o, f->name);
        out_str(o, suffix);
        if (!f->n_labels && !le)
                return;
        out_ch(o, '{');
        for (size_t i = 0; i < f->n_labels; i++) {
                if (i)
                        out_ch(o, ',');
                out_str(o, f->labels[i]);
                out_str(o, "=\"");
                out_escaped(o, s->values[i], 1);
                out_ch(o, '"');
        }
        if (le) {
                if (f->n_labels)
                        out_ch(o, ',');
                out_str(o, "le=\"");
                out_str(o, le);
                out_ch(o, '"');
        }
        out_ch(o, '}');
}

static void render_series(out_t *o, const chorus_metric_t *f, chorus_series_t *s) {
        switch (f->type) {
        case CHORUS_METRIC_COUNTER:
                out_sample_name(o, f, s, "", NULL);
                out_ch(o, ' ');
                out_u64(o, atomic_load_explicit(&s->count, memory_order_relaxed));
                out_ch(o, '\n');
                break;
        case CHORUS_METRIC_GAUGE:
                out_sample_name(o, f, s, "", NULL);
                out_ch(o, ' ');
                out_double(o, bitsd(atomic_load_explicit(&s->bits, memory_order_relaxed)));
                out_ch(o, '\n');
                break;
        case CHORUS_METRIC_HISTOGRAM: {
                uint64_t cum = 0, count;
                char le[32];

                for (size_t i = 0; i < f->n_bounds; i++) {
                        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
                        format_double(le, sizeof(le), f->bounds[i]);
                        out_sample_name(o, f, s, "_bucket", le);
                        out_ch(o, ' ');
                        out_u64(o, cum);
                        out_ch(o, '\n');
                }
                /* The count was incremented last: never below the buckets read before it. */
                count = atomic_load_explicit(&s->count, memory_order_relaxed);
                if (count < cum)
                        count = cum;
                out_sample_name(o, f, s, "_bucket", "+Inf");
                out_ch(o, ' ');
                out_u64(o, count);
                out_ch(o, '\n');
                out_sample_name(o, f, s, "_sum", NULL);
                out_ch(o, ' ');
                out_double(o, bitsd(atomic_load_explicit(&s->bits, memory_order_relaxed)));
                out_ch(o, '\n');
                out_sample_name(o, f, s, "_count", NULL);
                out_ch(o, ' ');
                out_u64(o, count);
                out_ch(o, '\n');
                break;
        }
        }
}

static void render_family(out_t *o, const chorus_metric_t *f) {
        static const char *const type_names[] = {"counter", "gauge", "histogram"};
        chorus_series_t *head =
            atomic_load_explicit(&((chorus_metric_t *)f)->series, memory_order_acquire);
        chorus_series_t **order;
        size_t n = 0, i;

        out_str(o, "# HELP ");
        out_str(o, f->name);
        out_ch(o, ' ');
        out_escaped(o, f->help, 0);
        out_str(o, "\n# TYPE ");
        out_str(o, f->name);
        out_ch(o, ' ');
        out_str(o, type_names[f->type]);
        out_ch(o, '\n');
        /* Series in creation order, so a scrape reads like the code. */
        for (chorus_series_t *s = head; s; s = s->next)
                n++;
        if (!n)
                return;
        order = xcalloc(n, sizeof(*order));
        i = n;
        for (chorus_series_t *s = head; s && i; s = s->next)
                order[--i] = s;
        for (i = 0; i < n; i++)
                if (atomic_load_explicit(&order[i]->shown, memory_order_relaxed))
                        render_series(o, f, order[i]);
        free(order);
}

char *chorus_metrics_render(const chorus_metrics_t *m, size_t *len) {
        out_t o = {0};
        chorus_metric_t *head =
            atomic_load_explicit(&((chorus_metrics_t *)m)->families, memory_order_acquire);
        chorus_metric_t **order;
        size_t n = 0, i;

        out_grow(&o, 0);
        o.buf[0] = '\0';
        for (chorus_metric_t *f = head; f; f = f->next)
                n++;
        order = xcalloc(n ? n : 1, sizeof(*order));
        i = n;
        for (chorus_metric_t *f = head; f && i; f = f->next)
                order[--i] = f;
        for (i = 0; i < n; i++)
                render_family(&o, order[i]);
        free(order);
        if (len)
                *len = o.len;
        return o.buf;
}
