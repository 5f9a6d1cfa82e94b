/*
 * Building one EnsembleForecast (SPEC §5) from a group view: the predictions
 * present and the aggregates of their windows, as of the group's issued_at.
 * Pure: no I/O.
 */
#ifndef CHORUS_FORECAST_H
#define CHORUS_FORECAST_H

#include <stddef.h>
#include <stdint.h>

#include "chorus/config.h"
#include "chorus/ensemble.h"
#include "chorus/record.h"

/** One model present in a group, with its window aggregates as of the group's issued_at. */
typedef struct chorus_group_model {
        const char *model; /**< points into the reply */
        int64_t issued_at;
        double value;
        chorus_score_agg_t scores; /**< counts and exact sums of its window (SPEC §4) */
} chorus_group_model_t;

/** What a forecast is computed from: the group and its windows' aggregates, as of issued_at. */
typedef struct chorus_group_view {
        const char *series, *horizon;
        int64_t bucket;
        int64_t revision;
        int64_t issued_at; /**< latest issued_at present: the "as of" time */
        size_t n_models;
        chorus_group_model_t *models; /**< sorted by model id (bytewise) */
        size_t n_publishers;
        const char **publishers;     /**< sorted; models that published in the window */
        chorus_actual_agg_t actuals; /**< the series' window actuals, aggregated (SPEC §5.2) */
        int overfitting; /**< the latest validation window closed by issued_at is overfitting */
} chorus_group_view_t;

/**
 * @brief Compute the forecast of @p g under @p cfg (baseline profile).
 *
 * models_expected is the configured list for the horizon, or the publishers
 * of the window when none is configured; models_present is every model in
 * the group. Weights (§5.1), the combination, the z-guard and clipping
 * (§5.2) follow the configuration.
 *
 * @returns CHORUS_OK, or CHORUS_ERR_INVALID_ARG when the group has no model
 *          or more than CHORUS_MAX_MODELS.
 */
chorus_err_t chorus_forecast_build(const chorus_config_t *cfg, const chorus_group_view_t *g,
                                   chorus_forecast_t *out);

#endif /* CHORUS_FORECAST_H */
