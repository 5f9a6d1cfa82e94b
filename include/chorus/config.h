/*
 * Configuration: one table of keys (name, type, default, range, doc) drives
 * the file parser, the environment overrides, `chorus check-config` and the
 * generated docs/configuration.md.
 *
 * File format: `key = value` lines, `#` comments. Keys are dot-separated;
 * a segment that names a series, model, horizon or regime may be quoted so
 * that it can contain dots: series."BRK.B".min = 20.
 *
 * Environment: every key K may be overridden by CHORUS_<K>, where K is
 * upper-cased and '.' becomes '_' (CHORUS_WEIGHTS_MIN_SAMPLES). For keys with
 * a name segment, the name is written verbatim between the fixed parts:
 * CHORUS_SERIES_BRK.B_MIN=20. Precedence: defaults < file < environment.
 * The seed system's variables ENABLE_<MODEL>, ENSEMBLE_MODEL_COUNT,
 * ENSEMBLE_OPTIMIZATION_METHOD, CANARY_SYMBOLS are honoured as in SPEC §8;
 * they are applied before the CHORUS_* variables, so a CHORUS_* variable
 * wins over the seed variable it overlaps.
 *
 * Keys under `kafka.` are passed to librdkafka (rd_kafka_conf_set); a key
 * librdkafka rejects is a configuration error. A plain `kafka.<key>` goes to
 * the client(s) that librdkafka documents the key for (consumer, producer or
 * both: chorus_config_kafka_applies()); `kafka.consumer.<key>` and
 * `kafka.producer.<key>` go to that client only and win over `kafka.<key>`.
 */
#ifndef CHORUS_CONFIG_H
#define CHORUS_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "chorus/codec.h"
#include "chorus/err.h"
#include "chorus/record.h"

typedef enum chorus_topic_role {
        CHORUS_TOPIC_PREDICTIONS = 0,
        CHORUS_TOPIC_ACTUALS,
        CHORUS_TOPIC_INDICATORS,
        CHORUS_TOPIC_FEATURE_IMPORTANCE,
        CHORUS_TOPIC_FORECASTS,
        CHORUS_TOPIC_ALERTS,
        CHORUS_TOPIC_REGIMES,
        CHORUS_TOPIC_VALIDATION,
        CHORUS_TOPIC_SHADOW,
        CHORUS_TOPIC_DLQ,
        CHORUS_TOPIC__COUNT
} chorus_topic_role_t;

typedef enum chorus_weights_method {
        CHORUS_WEIGHTS_EXP_INV_MAPE = 0,
        CHORUS_WEIGHTS_EQUAL,
        CHORUS_WEIGHTS_INV_MAPE,
        CHORUS_WEIGHTS_INV_MSE,
} chorus_weights_method_t;

typedef enum chorus_z_reference {
        CHORUS_ZREF_CHANGE = 0,
        CHORUS_ZREF_LEVEL,
} chorus_z_reference_t;

typedef enum chorus_emit_mode {
        CHORUS_EMIT_EVERY = 0,
        CHORUS_EMIT_COMPLETE,
} chorus_emit_mode_t;

typedef enum chorus_guarantee {
        CHORUS_GUARANTEE_EXACTLY_ONCE = 0,
        CHORUS_GUARANTEE_AT_LEAST_ONCE,
} chorus_guarantee_t;

typedef struct chorus_topic_conf {
        char name[250];            /**< topic.<role> */
        chorus_framing_t framing;  /**< topic.<role>.framing: confluent|bare */
        int32_t schema_id;         /**< topic.<role>.schema_id: id written / assumed for bare */
        chorus_record_type_t type; /**< fixed by the role; __COUNT for dlq (raw) */
} chorus_topic_conf_t;

/** Per-series settings: series.<name>.{min,max,resolution}. */
typedef struct chorus_series_conf {
        chorus_name_t name;
        int has_min, has_max;
        double min, max;
        int64_t resolution_ms; /**< 0: use resolution.default */
} chorus_series_conf_t;

/** Per-horizon settings: horizon.<name>.models (comma list). */
typedef struct chorus_horizon_conf {
        chorus_name_t name;
        size_t n_models;
        chorus_name_t *models; /**< sorted, unique */
} chorus_horizon_conf_t;

/** A writer schema registered by id: schema.<id>.record, schema.<id>.file. */
typedef struct chorus_schema_conf {
        int32_t id;
        chorus_record_type_t type; /**< CHORUS_RECORD__COUNT until set; finalize requires it */
        char *file;
} chorus_schema_conf_t;

/**
 * Which librdkafka client a kafka.* setting is for.
 *
 * As the argument of the functions below, CONSUMER or PRODUCER names the
 * client being configured. As chorus_kv_t.client, it says how the entry was
 * written: CHORUS_KAFKA_ANY for a plain `kafka.<key>`, CONSUMER or PRODUCER
 * for `kafka.consumer.<key>` / `kafka.producer.<key>`.
 */
typedef enum chorus_kafka_client {
        CHORUS_KAFKA_ANY = 0,  /**< kafka.<key>: the clients librdkafka documents it for */
        CHORUS_KAFKA_CONSUMER, /**< kafka.consumer.<key>: the consumer only */
        CHORUS_KAFKA_PRODUCER, /**< kafka.producer.<key>: the producer only */
} chorus_kafka_client_t;

/** Name/value pair passed to librdkafka. */
typedef struct chorus_kv {
        char *key; /**< the librdkafka key: without "kafka.", "kafka.consumer." or
                    *   "kafka.producer." */
        char *value;
        chorus_kafka_client_t client; /**< how it was written (see chorus_kafka_client_t) */
} chorus_kv_t;

typedef struct chorus_config {
        chorus_topic_conf_t topics[CHORUS_TOPIC__COUNT];

        size_t n_schemas;
        chorus_schema_conf_t *schemas;

        /** kafka.* passthrough. Every CHORUS_KAFKA_ANY entry comes before every
         *  override (CONSUMER/PRODUCER); within each group entries are in the
         *  order their key was first set, and a key set again (same client)
         *  keeps its place and takes the new value. So applying, in array
         *  order, the entries that chorus_config_kafka_kv_applies() selects
         *  lets an override win over the plain key. */
        size_t n_kafka;
        chorus_kv_t *kafka;

        char *redis_host;     /**< redis.host (127.0.0.1) */
        int redis_port;       /**< redis.port (6379) */
        char *redis_user;     /**< redis.user (empty: the default user) */
        char *redis_password; /**< redis.password (empty: none) */
        int redis_tls;        /**< redis.tls (false; true is rejected: no TLS in hiredis 0.14) */
        int redis_db;         /**< redis.db (0) */
        int redis_timeout_ms; /**< redis.timeout_ms (5000) */
        char *redis_prefix;   /**< redis.key_prefix ("chorus"); no braces */

        int window_days;       /**< window.days (30) */
        int retention_days;    /**< state.retention_days (100); >= window.days */
        int64_t resolution_ms; /**< resolution.default (1d), accepts 1h, 15m, 86400000 */

        chorus_weights_method_t weights_method; /**< weights.method (exp_inv_mape) */
        /** weights.method as configured ("simple_avg" stays "simple_avg"): the value
         *  EnsembleForecast.weighting_method carries (SPEC §3: "the method configured"). */
        char weights_method_name[32];
        int weights_min_samples; /**< weights.min_samples (5) */

        int validation_min_samples;       /**< validation.min_samples (10) */
        chorus_z_reference_t z_reference; /**< validation.z_reference (change) */
        double z_max;                     /**< validation.z_max (3.0) */
        double shrink;                    /**< validation.shrink (0.5), in [0,1] */
        int validation_window_days;       /**< validation.window_days (30) */
        int validation_min_test_points;   /**< validation.min_test_points (15) */
        double validation_divergence_max; /**< validation.divergence_max (0.20) */

        /** Monitoring (SPEC §6). alerts.baseline_mape: "auto" or a number (pp). */
        int alerts_enabled;             /**< alerts.enabled (0 while in progress) */
        char *alerts_baseline_mape;     /**< "auto" (default) or a decimal number */
        double alerts_mape_pp;          /**< alerts.mape_degradation.pp (0.5) */
        int alerts_mape_days;           /**< alerts.mape_degradation.days (3) */
        double alerts_drift_pp;         /**< alerts.performance_drift.pp (0.2) */
        int alerts_drift_days;          /**< alerts.performance_drift.days (7) */
        int alerts_drift_min_targets;   /**< alerts.performance_drift.min_targets (5) */
        int alerts_auto_from_days;      /**< alerts.baseline_auto.from_days (96) */
        int alerts_auto_to_days;        /**< alerts.baseline_auto.to_days (7) */
        int alerts_auto_min_days;       /**< alerts.baseline_auto.min_days (20) */
        double alerts_overfit_critical; /**< alerts.overfitting.critical_divergence (0.30) */
        double alerts_missing_pct;      /**< alerts.data_missing.pct (5) */
        double alerts_shift_max;        /**< alerts.weight_shift.max_change (0.10) */
        int alerts_shift_days;          /**< alerts.weight_shift.days (7) */
        double alerts_extreme_pct;      /**< alerts.extreme_predictions.pct (10) */
        int alerts_extreme_min;         /**< alerts.extreme_predictions.min_forecasts (10) */
        int alerts_storm_count;         /**< alerts.alert_storm.count (5) */
        int alerts_storm_window_s;      /**< alerts.alert_storm.window_s (3600) */
        double alerts_stale_factor;     /**< alerts.data_stale.factor (2.0) */
        int alerts_stale_wall;          /**< alerts.data_stale.clock: 1 for wall (event) */
        int alerts_stale_min_hours;     /**< alerts.data_stale.min_hours (24) */
        int alerts_stale_lookback_days; /**< alerts.data_stale.lookback_days (90) */
        double alerts_fs_change;        /**< alerts.feature_shift.change (0.20) */
        int alerts_fs_top_n;            /**< alerts.feature_shift.top_n (10) */
        int alerts_fs_days;             /**< alerts.feature_shift.days (30) */

        chorus_emit_mode_t emit_mode; /**< emit.mode (every) */
        int emit_min_models;          /**< emit.min_models (1) */

        size_t n_models;       /**< models (comma list): the configured model list */
        chorus_name_t *models; /**< sorted, unique; applies to every horizon without its own */

        size_t n_horizons; /**< horizons (comma list): allowed horizons; empty: any */
        chorus_name_t *horizons;

        size_t n_horizon_confs;
        chorus_horizon_conf_t *horizon_confs;

        size_t n_series_confs;
        chorus_series_conf_t *series_confs;

        int batch_max_records; /**< batch.max_records (1000) */
        int batch_max_wait_ms; /**< batch.max_wait_ms (100) */
        /** join.max_wait_ms (5000): how long (wall clock) a prediction may be held
         *  waiting for its series' actuals to catch up to its issued_at (SPEC §9.2). */
        int join_max_wait_ms;

        chorus_guarantee_t processing_guarantee; /**< processing.guarantee (exactly_once) */
        int processing_max_attempts;             /**< processing.max_attempts (3) */
        int dlq_max_value_bytes; /**< dlq.max_value_bytes (262144): a longer key or value is cut */

        int log_level; /**< log.level (info): a chorus_log_level_t, for the caller to apply */

        /** worker.id (empty: automatic): names this worker instance; the
         *  transactional.id is `<group.id>-<worker.id>`. Never NULL; a valid
         *  SPEC §1 name when non-empty. See chorus_identity_acquire(). */
        char *worker_id;

        /** http.listen ("127.0.0.1:9464"): where /metrics, /healthz and
         *  /readyz are served; empty: no endpoints. Never NULL. */
        char *http_listen;
        int http_liveness_ms; /**< http.liveness_timeout_ms (60000) */

        /** rollout.canary_series / CANARY_SYMBOLS: sorted, unique. Stored only:
         *  rollout (SPEC §8) is a later feature. */
        size_t n_canary_series;
        chorus_name_t *canary_series;
} chorus_config_t;

/** @brief Allocate a config holding every default. Never NULL (aborts on OOM). */
chorus_config_t *chorus_config_new(void);

/** @brief Free a config. Accepts NULL. */
void chorus_config_destroy(chorus_config_t *cfg);

/**
 * @brief Set one key from its string form (file line or env value).
 * @returns CHORUS_OK or CHORUS_ERR_CONFIG; @p errstr names the key and the
 *          allowed range or values, e.g. `weights.min_samples: 0 is out of range [1, 1000000]`.
 */
chorus_err_t chorus_config_set(chorus_config_t *cfg, const char *key, const char *value,
                               char *errstr, size_t errstr_size);

/** @brief Read a config file. Errors name the file, line and key. */
chorus_err_t chorus_config_load_file(chorus_config_t *cfg, const char *path, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Parse @p len bytes of config-file text (need not be NUL-terminated).
 * @param name  the name errors use in place of a file name ("FILE:LINE: ...").
 * @remark On error @p cfg holds the lines before the bad one; destroy it.
 */
chorus_err_t chorus_config_load_buffer(chorus_config_t *cfg, const char *text, size_t len,
                                       const char *name, char *errstr, size_t errstr_size);

/** @brief Apply CHORUS_* and the seed variables from @p envp (NULL-terminated). */
chorus_err_t chorus_config_load_env(chorus_config_t *cfg, char **envp, char *errstr,
                                    size_t errstr_size);

/** @brief Checks across keys (e.g. emit.mode=complete needs a model list;
 *         the kafka.* keys are accepted by librdkafka). Call once after loading. */
chorus_err_t chorus_config_finalize(chorus_config_t *cfg, char *errstr, size_t errstr_size);

/** @brief defaults < file (if @p path) < env, then finalize. */
chorus_err_t chorus_config_load(chorus_config_t *cfg, const char *path, char **envp, char *errstr,
                                size_t errstr_size);

/** @returns the settings of @p series, or NULL when it has none. */
const chorus_series_conf_t *chorus_config_series(const chorus_config_t *cfg, const char *series);

/** @returns the resolution (ms) of @p series. */
int64_t chorus_config_resolution_ms(const chorus_config_t *cfg, const char *series);

/**
 * @brief The configured model list for @p horizon: horizon.<h>.models, else
 *        `models`, else none (*n = 0: expected = models that published).
 */
const chorus_name_t *chorus_config_expected_models(const chorus_config_t *cfg, const char *horizon,
                                                   size_t *n);

/** @returns non-zero if @p horizon is allowed (always, when no list is configured). */
int chorus_config_horizon_allowed(const chorus_config_t *cfg, const char *horizon);

/**
 * @returns the canonical name of @p m ("exp_inv_mape", "equal", "inv_mape",
 *          "inv_mse"), or "unknown".
 * @remark  The alias "simple_avg" maps to CHORUS_WEIGHTS_EQUAL, so this returns
 *          "equal" for it; the name as configured, which is what forecasts
 *          carry, is cfg->weights_method_name.
 */
const char *chorus_weights_method_name(chorus_weights_method_t m);

/* ------------------------------------------------------------------------ */
/* Kafka passthrough routing                                                */
/* ------------------------------------------------------------------------ */

struct rd_kafka_conf_s;

/**
 * @brief Does the librdkafka property @p key apply to @p client?
 *
 * Uses librdkafka's own scope of each property (the C/P column of its
 * CONFIGURATION.md, librdkafka 2.0.2): consumer-only properties (group.id,
 * isolation.level, ...) apply to the consumer only, producer-only ones
 * (acks, linger.ms, transactional.id, ...) to the producer only, and every
 * other key, known to be for both or unknown to the table, to both.
 *
 * @param key     the librdkafka key, without any "kafka." prefix.
 * @param client  CHORUS_KAFKA_CONSUMER or CHORUS_KAFKA_PRODUCER
 *                (CHORUS_KAFKA_ANY: always non-zero).
 * @returns non-zero if a plain `kafka.<key>` setting goes to @p client.
 */
int chorus_config_kafka_applies(const char *key, chorus_kafka_client_t client);

/**
 * @brief Does the entry @p kv go to @p client (CONSUMER or PRODUCER)?
 * @returns for a plain entry, chorus_config_kafka_applies(kv->key, client);
 *          for an override, whether it names @p client.
 */
int chorus_config_kafka_kv_applies(const chorus_kv_t *kv, chorus_kafka_client_t client);

/**
 * @brief The value librdkafka key @p key gets on @p client (CONSUMER or
 *        PRODUCER) from the passthrough: its override if set, else the
 *        plain key if it applies to @p client.
 * @returns the value (owned by @p cfg), or NULL when @p cfg does not set it.
 */
const char *chorus_config_kafka_get(const chorus_config_t *cfg, const char *key,
                                    chorus_kafka_client_t client);

/**
 * @brief Set on @p conf, in order, every kafka.* entry that goes to
 *        @p client (CONSUMER or PRODUCER): the plain keys that apply to it,
 *        then its overrides, so that an override wins.
 *
 * This is what chorus_config_finalize() runs to validate the passthrough,
 * and what a caller building a client's rd_kafka_conf_t should run after
 * its own defaults (so that the user's settings win over them).
 *
 * @param conf  a librdkafka rd_kafka_conf_t (borrowed; not destroyed).
 * @returns CHORUS_OK, or CHORUS_ERR_CONFIG with @p errstr naming the key as
 *          written (e.g. `kafka.consumer.session.timeout.ms: rejected by
 *          librdkafka: ...`). On error @p conf holds the entries before it.
 */
chorus_err_t chorus_config_kafka_apply(const chorus_config_t *cfg, chorus_kafka_client_t client,
                                       struct rd_kafka_conf_s *conf, char *errstr,
                                       size_t errstr_size);

/** @brief Write the Markdown configuration reference generated from the table
 *         to @p fp. @returns 0 or -1 on write error. */
int chorus_config_write_reference(FILE *fp);

#endif /* CHORUS_CONFIG_H */
