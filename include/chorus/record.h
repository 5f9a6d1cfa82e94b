/*
 * Plain C views of the Avro records of SPEC §3.
 *
 * Strings are fixed-size, NUL-terminated arrays: a record owns no heap
 * memory, can be copied with `=`, and needs no destructor. The limits
 * below are also input limits: a longer string is an "absurd_length"
 * dead letter.
 */
#ifndef CHORUS_RECORD_H
#define CHORUS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define CHORUS_NAME_MAX   128 /**< series, model, horizon, indicator (bytes) */
#define CHORUS_TEXT_MAX   256 /**< free text: model_version, source */
#define CHORUS_MAX_MODELS 64  /**< models per (series, horizon) group */

/** Timestamps outside [CHORUS_TS_MIN, CHORUS_TS_MAX) are dead letters. */
#define CHORUS_TS_MIN INT64_C(0)             /* 1970-01-01T00:00:00Z */
#define CHORUS_TS_MAX INT64_C(7258118400000) /* 2200-01-01T00:00:00Z */

typedef char chorus_name_t[CHORUS_NAME_MAX + 1];

typedef enum chorus_record_type {
        CHORUS_RECORD_PREDICTION = 0,
        CHORUS_RECORD_ACTUAL,
        CHORUS_RECORD_INDICATOR,
        CHORUS_RECORD_FEATURE_IMPORTANCE,
        CHORUS_RECORD_FORECAST,
        CHORUS_RECORD_ALERT,
        CHORUS_RECORD_REGIME_CHANGE,
        CHORUS_RECORD_VALIDATION_WINDOW,
        CHORUS_RECORD__COUNT
} chorus_record_type_t;

typedef struct chorus_prediction {
        chorus_name_t model_id;
        int has_model_version;
        char model_version[CHORUS_TEXT_MAX + 1];
        chorus_name_t series;
        chorus_name_t horizon;
        int64_t issued_at;   /**< ms since epoch, UTC */
        int64_t target_time; /**< ms since epoch, UTC */
        double value;
        int has_lower, has_upper;
        double lower, upper;
} chorus_prediction_t;

typedef struct chorus_actual {
        chorus_name_t series;
        int64_t observed_at;
        double value;
        int has_source;
        char source[CHORUS_TEXT_MAX + 1];
} chorus_actual_t;

typedef struct chorus_indicator {
        chorus_name_t indicator;
        int64_t observed_at;
        double value;
} chorus_indicator_t;

/** Features per FeatureImportance record: a record with more is an
 *  "absurd_length" dead letter. 256 covers the models we know of (tens of
 *  features) with room, and bounds the cost of one FEATURE_SHIFT call. */
#define CHORUS_MAX_FEATURES 256

/** FeatureImportance (SPEC §3). Features are kept in ascending byte order of
 *  their names (each a SPEC §1 name, unique: an Avro map has unique keys),
 *  so that everything computed from a record is the same in every run. */
typedef struct chorus_feature_importance {
        chorus_name_t model_id;
        int has_series;
        chorus_name_t series;
        int64_t computed_at;
        size_t n_features;
        chorus_name_t feature[CHORUS_MAX_FEATURES]; /**< sorted */
        double importance[CHORUS_MAX_FEATURES];     /**< importance[i] is of feature[i] */
} chorus_feature_importance_t;

typedef enum chorus_fallback {
        CHORUS_FALLBACK_NONE = 0,
        CHORUS_FALLBACK_COLD_START,
        CHORUS_FALLBACK_OVERFITTING,
        CHORUS_FALLBACK_ROLLBACK,
} chorus_fallback_t;

/** @returns "cold_start", "overfitting", "rollback", or NULL for NONE. */
const char *chorus_fallback_name(chorus_fallback_t f);

/** EnsembleForecast. Models are kept in ascending byte order of their ids, so that
 *  the encoded `weights` map and arrays are byte-identical across runs. */
typedef struct chorus_forecast {
        chorus_name_t series;
        chorus_name_t horizon;
        int64_t target_time; /**< bucket start */
        int64_t issued_at;   /**< latest issued_at among the predictions present */
        int64_t revision;    /**< 1, 2, ... per group */
        double value;        /**< final, after the z-guard and clipping */
        double raw_value;    /**< Σ w·p */
        size_t n_present;
        chorus_name_t present[CHORUS_MAX_MODELS]; /**< models_present, sorted */
        double weight[CHORUS_MAX_MODELS];         /**< weights[i] is for present[i] */
        size_t n_expected;
        chorus_name_t expected[CHORUS_MAX_MODELS]; /**< models_expected, sorted */
        int complete;
        char weighting_method[32];
        char profile[16]; /**< "baseline" or "challenger" */
        int has_regime;
        char regime[32];
        int has_z_score;
        double z_score;
        int z_adjusted;
        int clipped;
        chorus_fallback_t fallback;
} chorus_forecast_t;

#define CHORUS_ALERT_DETAILS_MAX      32  /**< entries of Alert.details */
#define CHORUS_ALERT_DETAIL_KEY_MAX   64  /**< bytes of a details key */
#define CHORUS_ALERT_DETAIL_VALUE_MAX 512 /**< bytes of a details value */

/** Alert (SPEC §3, §6). `details` keys are unique and kept in the order
 *  given, so that the encoded map is byte-identical across runs. */
typedef struct chorus_alert {
        char
            fingerprint[5 * (CHORUS_NAME_MAX + 1) + 32]; /**< type|series|horizon|model|indicator */
        char type[32];
        char severity[16]; /**< critical, warning or info */
        char state[16];    /**< firing or resolved */
        int has_series;
        chorus_name_t series;
        int has_horizon;
        chorus_name_t horizon;
        int has_model_id;
        chorus_name_t model_id;
        int has_indicator;
        chorus_name_t indicator;
        double value;
        double threshold;
        int64_t event_time;
        char message[512];
        size_t n_details;
        char detail_key[CHORUS_ALERT_DETAILS_MAX][CHORUS_ALERT_DETAIL_KEY_MAX + 1];
        char detail_value[CHORUS_ALERT_DETAILS_MAX][CHORUS_ALERT_DETAIL_VALUE_MAX + 1];
} chorus_alert_t;

/** ValidationWindow (SPEC §3, §6.8). Models in ascending byte order. */
typedef struct chorus_validation_window {
        chorus_name_t series;
        chorus_name_t horizon;
        char profile[16];     /**< "baseline" or "challenger" */
        int64_t window_id;    /**< floor(window_start / window length) */
        int64_t window_start; /**< ms, inclusive */
        int64_t window_end;   /**< ms, exclusive: the next window's start */
        double val_rmse, test_rmse, equal_test_rmse;
        int has_divergence; /**< null when val_rmse = 0 */
        double divergence;
        int64_t test_points;
        int is_overfitting;
        int model_count;
        size_t n_models;
        chorus_name_t models[CHORUS_MAX_MODELS]; /**< models_used, sorted */
        double weight[CHORUS_MAX_MODELS];        /**< the frozen weights, weight[i] of models[i] */
} chorus_validation_window_t;

#endif /* CHORUS_RECORD_H */
