/*
 * One forecast from one group view (SPEC §5).
 *
 * Invariants: models are handled in ascending byte order of their ids (the
 * view is sorted), so weights, sums and the encoded record are the same
 * bits in every run. Stats come from the windows' aggregates, whose sums
 * are exact and rounded once, for the same reason; the view never carries
 * a window's points, so building a forecast costs the same for any window.
 */
#include <stdio.h>
#include <string.h>

#include "chorus/forecast.h"

static void copy_name(chorus_name_t dst, const char *src) {
        size_t len = strnlen(src, CHORUS_NAME_MAX);
        memcpy(dst, src, len);
        dst[len] = '\0';
}

chorus_err_t chorus_forecast_build(const chorus_config_t *cfg, const chorus_group_view_t *g,
                                   chorus_forecast_t *out) {
        chorus_model_stats_t stats[CHORUS_MAX_MODELS];
        double values[CHORUS_MAX_MODELS];
        chorus_weight_params_t wp = {0};
        chorus_guard_params_t gp = {0};
        chorus_guard_result_t guard;
        const chorus_series_conf_t *sc;
        const chorus_name_t *configured;
        size_t n_configured, present_expected = 0;

        if (g->n_models == 0 || g->n_models > CHORUS_MAX_MODELS)
                return CHORUS_ERR_INVALID_ARG;

        /* Field by field, not memset: the record is 17 KB of name arrays
         * of which only the first n_present / n_expected entries are read
         * (clearing it all was a third of the instructions per record). */
        out->has_regime = 0;
        out->regime[0] = '\0';
        copy_name(out->series, g->series);
        copy_name(out->horizon, g->horizon);
        out->target_time = g->bucket;
        out->issued_at = g->issued_at;
        out->revision = g->revision;
        snprintf(out->weighting_method, sizeof(out->weighting_method), "%s",
                 cfg->weights_method_name);
        snprintf(out->profile, sizeof(out->profile), "baseline");

        out->n_present = g->n_models;
        for (size_t i = 0; i < g->n_models; i++) {
                copy_name(out->present[i], g->models[i].model);
                values[i] = g->models[i].value;
                chorus_score_stats_from_agg(&g->models[i].scores, &stats[i]);
        }

        /* models_expected: the configured list, else the window's publishers. */
        configured = chorus_config_expected_models(cfg, g->horizon, &n_configured);
        if (n_configured) {
                out->n_expected =
                    n_configured < CHORUS_MAX_MODELS ? n_configured : CHORUS_MAX_MODELS;
                for (size_t i = 0; i < out->n_expected; i++)
                        copy_name(out->expected[i], configured[i]);
        } else {
                out->n_expected =
                    g->n_publishers < CHORUS_MAX_MODELS ? g->n_publishers : CHORUS_MAX_MODELS;
                for (size_t i = 0; i < out->n_expected; i++)
                        copy_name(out->expected[i], g->publishers[i]);
        }
        for (size_t i = 0; i < out->n_expected; i++)
                for (size_t j = 0; j < out->n_present; j++)
                        if (!strcmp(out->expected[i], out->present[j])) {
                                present_expected++;
                                break;
                        }
        out->complete = present_expected == out->n_expected;

        wp.method = cfg->weights_method;
        wp.min_samples = cfg->weights_min_samples;
        wp.overfitting = g->overfitting; /* SPEC §6.4: equal weights, fallback=overfitting */
        out->fallback = chorus_weights_compute(&wp, stats, g->n_models, out->weight);
        out->raw_value = chorus_weights_combine(out->weight, values, g->n_models);

        gp.z_reference = cfg->z_reference;
        gp.min_samples = cfg->validation_min_samples;
        gp.z_max = cfg->z_max;
        gp.shrink = cfg->shrink;
        if ((sc = chorus_config_series(cfg, g->series))) {
                gp.has_min = sc->has_min;
                gp.min = sc->min;
                gp.has_max = sc->has_max;
                gp.max = sc->max;
        }
        chorus_guard_apply_agg(&gp, out->raw_value, g->bucket, &g->actuals, &guard);
        out->value = guard.value;
        out->has_z_score = guard.has_z;
        out->z_score = guard.z;
        out->z_adjusted = guard.z_adjusted;
        out->clipped = guard.clipped;
        return CHORUS_OK;
}
