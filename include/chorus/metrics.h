/*
 * A small metrics registry: counters, gauges and histograms with labels,
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * Threads: one thread updates (the worker), any number render (the HTTP
 * server's). Values are atomics and families and series are append-only
 * lists published with release stores, so rendering takes no lock that an
 * update could wait for, and an update never waits for a render. Creating
 * a series takes a mutex that only creators share.
 */
#ifndef CHORUS_METRICS_H
#define CHORUS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct chorus_metrics_s chorus_metrics_t;
typedef struct chorus_metric_s chorus_metric_t; /**< a family: name, type, labels */
typedef struct chorus_series_s chorus_series_t; /**< one label combination of a family */

#define CHORUS_METRIC_LABELS_MAX  4
#define CHORUS_METRIC_BUCKETS_MAX 24

typedef enum chorus_metric_type {
        CHORUS_METRIC_COUNTER,
        CHORUS_METRIC_GAUGE,
        CHORUS_METRIC_HISTOGRAM,
} chorus_metric_type_t;

/** @brief A new, empty registry. Never NULL (aborts on out-of-memory). */
chorus_metrics_t *chorus_metrics_new(void);

/** @brief Free the registry and everything in it. Accepts NULL.
 *  @remark No thread may use it any more (stop the HTTP server first). */
void chorus_metrics_destroy(chorus_metrics_t *m);

/**
 * @brief Register a family.
 * @param name the metric name ([a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total).
 * @param help one line, no newline.
 * @param labels @p n_labels label names (at most CHORUS_METRIC_LABELS_MAX).
 * @param bounds histogram upper bounds, increasing (+Inf is implied); NULL
 *               for counters and gauges.
 * @remark The strings are copied. Aborts on a bad name or too many labels
 *         or buckets: families are declared by the program, not by input.
 * @returns the family, owned by the registry.
 */
chorus_metric_t *chorus_metrics_add(chorus_metrics_t *m, chorus_metric_type_t type,
                                    const char *name, const char *help, size_t n_labels,
                                    const char *const *labels, const double *bounds,
                                    size_t n_bounds);

/**
 * @brief The series of @p f with these label values (one per label of the
 *        family), created on first use (initialised to 0).
 * @remark Looking up costs a scan of the family's series; callers on a hot
 *         path keep the pointer. Values are copied.
 */
chorus_series_t *chorus_metric_series(chorus_metric_t *f, const char *const *values);

/** @brief The family's only series, for a family without labels. */
chorus_series_t *chorus_metric_series0(chorus_metric_t *f);

/** @brief Counter: add @p n (>= 0). */
void chorus_series_add(chorus_series_t *s, uint64_t n);

/** @brief Gauge: set to @p v. */
void chorus_series_set(chorus_series_t *s, double v);

/** @brief Histogram: count one observation of @p v. */
void chorus_series_observe(chorus_series_t *s, double v);

/** @brief Show (1) or hide (0) a series in the exposition (a gauge of a
 *  partition no longer assigned). Series start shown. */
void chorus_series_show(chorus_series_t *s, int shown);

/** @returns a counter's value, a gauge's, or a histogram's count (for tests). */
double chorus_series_value(const chorus_series_t *s);

/**
 * @brief Render every family in the text exposition format.
 * @returns a malloc'd NUL-terminated string (free()), its length in *@p len.
 */
char *chorus_metrics_render(const chorus_metrics_t *m, size_t *len);

#endif /* CHORUS_METRICS_H */
