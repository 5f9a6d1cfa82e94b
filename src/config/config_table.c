/*
 * The configuration key table: every key Chorus reads, with its type, where
 * it is stored, its range, its default and its documentation.
 *
 * Invariants:
 *  - This table is the only place a key is declared. config.c parses and
 *    stores through it, chorus_config_new() applies the `def` column through
 *    the same setter as a file line, and docs/configuration.md is printed
 *    from it, so a key cannot exist in one of them and not the others.
 *  - Rows of one section are adjacent, in the order the docs list them.
 *  - A placeholder segment (`<series>`, `<horizon>`, `<id>`, `<key>`) fixes
 *    the row's scope, i.e. which struct `off`/`aux_off` are relative to.
 *  - Defaults are strings in the syntax a user would write, so the docs
 *    show exactly what a file may contain.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/log.h"
#include "chorus/util.h"
#include "config_int.h"

/* ------------------------------------------------------------------------ */
/* Value checks for string keys                                             */
/* ------------------------------------------------------------------------ */

static int check_host(const char *v, char *errstr, size_t errstr_size) {
        if (!*v) {
                snprintf(errstr, errstr_size, "must not be empty");
                return -1;
        }
        for (const char *p = v; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                        snprintf(errstr, errstr_size,
                                 "must not contain whitespace or control characters");
                        return -1;
                }
        return 0;
}

/* Braces would turn the prefix into a Redis Cluster hash tag and pin every
 * key to one slot; whitespace breaks redis-cli and log lines. */
static int check_key_prefix(const char *v, char *errstr, size_t errstr_size) {
        size_t len = strlen(v);

        if (len == 0 || len > 64) {
                snprintf(errstr, errstr_size, "must be 1 to 64 bytes long");
                return -1;
        }
        for (const char *p = v; *p; p++)
                if (*p == '{' || *p == '}' || (unsigned char)*p <= ' ' || *p == 0x7f) {
                        snprintf(errstr, errstr_size,
                                 "must not contain '{', '}', whitespace or control characters");
                        return -1;
                }
        return 0;
}

/* worker.id: empty (automatic) or a SPEC §1 name. */
static int check_worker_id(const char *v, char *errstr, size_t errstr_size) {
        if (!*v || chorus_name_check(v, strlen(v)) == CHORUS_OK)
                return 0;
        snprintf(errstr, errstr_size, "is not a valid worker id %s; empty means automatic",
                 chorus_name_rules);
        return -1;
}

static int check_baseline(const char *v, char *errstr, size_t errstr_size) {
        char *end;
        double d;

        if (!strcmp(v, "auto"))
                return 0;
        errno = 0;
        d = strtod(v, &end);
        if (*v && !*end && !errno && isfinite(d) && d >= 0)
                return 0;
        snprintf(errstr, errstr_size, "must be `auto` or a number of percentage points >= 0");
        return -1;
}

/* http.listen: empty (off) or host:port. */
static int check_listen(const char *v, char *errstr, size_t errstr_size) {
        char host[256], port[8];

        if (!*v)
                return 0;
        return chorus_hostport_split(v, host, sizeof(host), port, sizeof(port), errstr,
                                     errstr_size);
}

static int check_path(const char *v, char *errstr, size_t errstr_size) {
        if (!*v) {
                snprintf(errstr, errstr_size, "must not be empty");
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------------ */
/* Enum values                                                              */
/* ------------------------------------------------------------------------ */

static const conf_enum_value_t framing_values[] = {
    {"confluent", CHORUS_FRAMING_CONFLUENT, NULL, 0},
    {"bare", CHORUS_FRAMING_BARE, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t weights_values[] = {
    {"exp_inv_mape", CHORUS_WEIGHTS_EXP_INV_MAPE, NULL, 0},
    {"equal", CHORUS_WEIGHTS_EQUAL, NULL, 0},
    {"simple_avg", CHORUS_WEIGHTS_EQUAL, "alias of equal", 0},
    {"inv_mape", CHORUS_WEIGHTS_INV_MAPE, NULL, 0},
    {"inv_mse", CHORUS_WEIGHTS_INV_MSE, NULL, 0},
    {"adahedge", 0, "not implemented yet", 1},
    {NULL, 0, NULL, 0},
};

/* redis.tls: a boolean whose `true` cannot be served by hiredis 0.14.1. */
static const conf_enum_value_t bool_values_no_tls[] = {
    {"false", 0, NULL, 0},
    {"true", 1, "not supported: hiredis 0.14.1 (Debian 12) is built without TLS", 1},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t stale_clock_values[] = {
    {"event", 0, NULL, 0},
    {"wall", 1, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t zref_values[] = {
    {"change", CHORUS_ZREF_CHANGE, NULL, 0},
    {"level", CHORUS_ZREF_LEVEL, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t emit_values[] = {
    {"every", CHORUS_EMIT_EVERY, NULL, 0},
    {"complete", CHORUS_EMIT_COMPLETE, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t record_values[] = {
    {"prediction", CHORUS_RECORD_PREDICTION, NULL, 0},
    {"actual", CHORUS_RECORD_ACTUAL, NULL, 0},
    {"indicator", CHORUS_RECORD_INDICATOR, NULL, 0},
    {"feature_importance", CHORUS_RECORD_FEATURE_IMPORTANCE, NULL, 0},
    {"forecast", CHORUS_RECORD_FORECAST, NULL, 0},
    {"alert", CHORUS_RECORD_ALERT, NULL, 0},
    {"regime_change", CHORUS_RECORD_REGIME_CHANGE, NULL, 0},
    {"validation_window", CHORUS_RECORD_VALIDATION_WINDOW, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t guarantee_values[] = {
    {"exactly_once", CHORUS_GUARANTEE_EXACTLY_ONCE, NULL, 0},
    {"at_least_once", CHORUS_GUARANTEE_AT_LEAST_ONCE, NULL, 0},
    {NULL, 0, NULL, 0},
};

static const conf_enum_value_t log_values[] = {
    {"error", CHORUS_LOG_ERROR, NULL, 0},
    {"warn", CHORUS_LOG_WARN, NULL, 0},
    {"info", CHORUS_LOG_INFO, NULL, 0},
    {"debug", CHORUS_LOG_DEBUG, NULL, 0},
    {NULL, 0, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

#define FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define G(f)           FIELD(chorus_config_t, f)
#define SERIES(f)      FIELD(chorus_series_conf_t, f)
#define HORIZON(f)     FIELD(chorus_horizon_conf_t, f)
#define SCHEMA(f)      FIELD(chorus_schema_conf_t, f)

#define DAY_MS 86400000.0

/* The three keys of one topic role. `what` names the topic's content once,
 * and each row's description is built around it. */
/* clang-format off */
#define TOPIC_ROWS(role, ROLE, topic, id, what, note)                                              \
        {.name = "topic." role,                                                                    \
         .type = CONF_TOPIC,                                                                       \
         .section = CONF_SEC_TOPICS,                                                               \
         G(topics[ROLE].name),                                                                     \
         .def = topic,                                                                             \
         .desc = "Kafka topic of " what "." note},                                                 \
        {.name = "topic." role ".framing",                                                         \
         .type = CONF_ENUM,                                                                        \
         .section = CONF_SEC_TOPICS,                                                               \
         G(topics[ROLE].framing),                                                                  \
         .def = "confluent",                                                                       \
         .values = framing_values,                                                                 \
         .desc = "Wire framing of " what "."},                                                     \
        {.name = "topic." role ".schema_id",                                                       \
         .type = CONF_INT,                                                                         \
         .section = CONF_SEC_TOPICS,                                                               \
         G(topics[ROLE].schema_id),                                                                \
         .min = 0,                                                                                 \
         .max = INT32_MAX,                                                                         \
         .def = id,                                                                                \
         .desc = "Schema id of " what ": written in the framing of output, assumed for input "     \
                 "framed `bare`."}
/* clang-format on */

const conf_prop_t chorus_conf_props[] = {
    TOPIC_ROWS("predictions", CHORUS_TOPIC_PREDICTIONS, "chorus.predictions", "1",
               "the input `Prediction` records", ""),
    TOPIC_ROWS("actuals", CHORUS_TOPIC_ACTUALS, "chorus.actuals", "2", "the input `Actual` records",
               ""),
    TOPIC_ROWS("indicators", CHORUS_TOPIC_INDICATORS, "chorus.indicators", "3",
               "the input `IndicatorObservation` records", ""),
    TOPIC_ROWS("feature_importance", CHORUS_TOPIC_FEATURE_IMPORTANCE, "chorus.feature-importance",
               "4", "the input `FeatureImportance` records", ""),
    TOPIC_ROWS("forecasts", CHORUS_TOPIC_FORECASTS, "chorus.forecasts", "5",
               "the output `EnsembleForecast` records", ""),
    TOPIC_ROWS("alerts", CHORUS_TOPIC_ALERTS, "chorus.alerts", "6", "the output `Alert` records",
               ""),
    TOPIC_ROWS("regimes", CHORUS_TOPIC_REGIMES, "chorus.regimes", "7",
               "the output `RegimeChange` records", ""),
    TOPIC_ROWS("validation", CHORUS_TOPIC_VALIDATION, "chorus.validation", "8",
               "the output `ValidationWindow` records", ""),
    TOPIC_ROWS("shadow", CHORUS_TOPIC_SHADOW, "chorus.shadow", "5",
               "the challenger's `EnsembleForecast` records (SPEC §8)", ""),
    TOPIC_ROWS("dlq", CHORUS_TOPIC_DLQ, "chorus.dlq", "0", "dead letters",
               " A dead letter is the original value, byte for byte, so this topic's framing and "
               "schema id are unused."),

    {.name = "schema.<id>.record",
     .type = CONF_ENUM,
     .scope = CONF_SCOPE_SCHEMA,
     .section = CONF_SEC_SCHEMAS,
     SCHEMA(type),
     .values = record_values,
     .desc = "Record type of the writer schema registered under schema id `<id>` "
             "(1 to 2147483647). Requires `schema.<id>.file`."},
    {.name = "schema.<id>.file",
     .type = CONF_STRING,
     .scope = CONF_SCOPE_SCHEMA,
     .section = CONF_SEC_SCHEMAS,
     SCHEMA(file),
     .check = check_path,
     .desc = "Path of the writer schema (`.avsc`) for schema id `<id>`; must be readable. "
             "Requires `schema.<id>.record`."},

    {.name = "redis.host",
     .type = CONF_STRING,
     .section = CONF_SEC_REDIS,
     G(redis_host),
     .def = "127.0.0.1",
     .check = check_host,
     .desc = "Host name or address of the Redis server."},
    {.name = "redis.port",
     .type = CONF_INT,
     .section = CONF_SEC_REDIS,
     G(redis_port),
     .min = 1,
     .max = 65535,
     .def = "6379",
     .desc = "TCP port of the Redis server."},
    {.name = "redis.user",
     .type = CONF_STRING,
     .section = CONF_SEC_REDIS,
     G(redis_user),
     .def = "",
     .desc = "ACL user name (Redis 6 and later): `AUTH <user> <password>` is sent with "
             "`redis.password`. Empty authenticates as the `default` user (`AUTH <password>`), "
             "or not at all when `redis.password` is empty too."},
    {.name = "redis.password",
     .type = CONF_STRING,
     .section = CONF_SEC_REDIS,
     G(redis_password),
     .flags = CONF_F_SECRET,
     .def = "",
     .desc = "Password for `AUTH`; empty sends no `AUTH` unless `redis.user` is set."},
    {.name = "redis.tls",
     .type = CONF_ENUM,
     .section = CONF_SEC_REDIS,
     G(redis_tls),
     .def = "false",
     .values = bool_values_no_tls,
     .desc = "Connect to Redis over TLS. Only `false` is accepted: the Redis client library "
             "Chorus is built with (hiredis 0.14.1, Debian 12) has no TLS support, so `true` is "
             "a configuration error rather than a silently plain-text connection. Reach a "
             "TLS-only Redis through a local TLS tunnel (e.g. stunnel) on loopback."},
    {.name = "redis.db",
     .type = CONF_INT,
     .section = CONF_SEC_REDIS,
     G(redis_db),
     .min = 0,
     .max = INT_MAX,
     .def = "0",
     .desc = "Database number selected after connecting."},
    {.name = "redis.timeout_ms",
     .type = CONF_INT,
     .section = CONF_SEC_REDIS,
     G(redis_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = "5000",
     .desc = "Connect and command timeout in milliseconds."},
    {.name = "redis.key_prefix",
     .type = CONF_STRING,
     .section = CONF_SEC_REDIS,
     G(redis_prefix),
     .def = "chorus",
     .check = check_key_prefix,
     .desc = "Prefix of every Redis key, so several deployments can share a server. "
             "1 to 64 bytes, without `{`, `}` or whitespace (braces would make it a "
             "cluster hash tag)."},

    {.name = "window.days",
     .type = CONF_INT,
     .section = CONF_SEC_WINDOWS,
     G(window_days),
     .min = 1,
     .max = 3650,
     .def = "30",
     .desc = "Length of the rolling scoring window in days of event time (SPEC §4)."},
    {.name = "state.retention_days",
     .type = CONF_INT,
     .section = CONF_SEC_WINDOWS,
     G(retention_days),
     .min = 1,
     .max = 36500,
     .def = "100",
     .desc = "Days of event time that scored state is kept in Redis; must be at least "
             "`window.days`."},
    {.name = "resolution.default",
     .type = CONF_DURATION,
     .section = CONF_SEC_WINDOWS,
     G(resolution_ms),
     .min = 1,
     .max = 3650 * DAY_MS,
     .def = "1d",
     .desc = "Bucket width of a series without `series.<series>.resolution`."},

    {.name = "weights.method",
     .type = CONF_ENUM,
     .section = CONF_SEC_WEIGHTS,
     G(weights_method),
     .aux_off = offsetof(chorus_config_t, weights_method_name),
     .flags = CONF_F_AUX,
     .def = "exp_inv_mape",
     .values = weights_values,
     .desc = "How model weights are computed (SPEC §5.1). Forecasts carry the name as "
             "configured in `weighting_method`, so `simple_avg` stays `simple_avg`."},
    {.name = "weights.min_samples",
     .type = CONF_INT,
     .section = CONF_SEC_WEIGHTS,
     G(weights_min_samples),
     .min = 1,
     .max = 1000000,
     .def = "5",
     .desc = "Scored points in the window below which a model is cold."},

    {.name = "alerts.enabled",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_enabled),
     .min = 0,
     .max = 1,
     .def = "1",
     .desc = "1: monitoring (SPEC §6): the served forecasts are scored as `__ensemble__`, every "
             "alert rule runs (`chorus.alerts`), the walk-forward validation windows close "
             "(`chorus.validation`) and overfitting makes the weights equal; feature "
             "importances are consumed. It costs a second and a third Redis round trip per "
             "batch. 0: forecasts only, with no overfitting fallback."},
    {.name = "alerts.baseline_mape",
     .type = CONF_STRING,
     .section = CONF_SEC_ALERTS,
     G(alerts_baseline_mape),
     .check = check_baseline,
     .def = "auto",
     .desc = "The ensemble's reference MAPE in percent, or `auto`: the median of its daily "
             "MAPE over days D-96..D-7 of the day D judged (see `alerts.baseline_auto.*`)."},
    {.name = "alerts.baseline_auto.from_days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_auto_from_days),
     .min = 1,
     .max = 100,
     .def = "96",
     .desc = "Oldest day of the auto baseline, in days before the day judged."},
    {.name = "alerts.baseline_auto.to_days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_auto_to_days),
     .min = 1,
     .max = 100,
     .def = "7",
     .desc = "Newest day of the auto baseline, in days before the day judged; at most "
             "`from_days`."},
    {.name = "alerts.baseline_auto.min_days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_auto_min_days),
     .min = 1,
     .max = 100,
     .def = "20",
     .desc = "Days with a daily MAPE needed in that range; until then the rules that need a "
             "baseline do not fire."},
    {.name = "alerts.mape_degradation.pp",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_mape_pp),
     .flags = CONF_F_NO_MAX,
     .min = 0,
     .def = "0.5",
     .desc = "`MAPE_DEGRADATION` (SPEC §6.1): percentage points above the baseline."},
    {.name = "alerts.mape_degradation.days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_mape_days),
     .min = 1,
     .max = 365,
     .def = "3",
     .desc = "`MAPE_DEGRADATION`: consecutive days with scored targets above the level."},
    {.name = "alerts.performance_drift.pp",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_drift_pp),
     .flags = CONF_F_NO_MAX,
     .min = 0,
     .def = "0.2",
     .desc = "`PERFORMANCE_DRIFT` (SPEC §6.2): percentage points above the baseline of the "
             "rolling MAPE."},
    {.name = "alerts.performance_drift.days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_drift_days),
     .min = 1,
     .max = 90,
     .def = "7",
     .desc = "`PERFORMANCE_DRIFT`: days of the rolling MAPE, the day judged included."},
    {.name = "alerts.performance_drift.min_targets",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_drift_min_targets),
     .min = 1,
     .max = 1000000,
     .def = "5",
     .desc = "`PERFORMANCE_DRIFT`: scored targets needed in those days."},
    {.name = "alerts.data_missing.pct",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_missing_pct),
     .min = 0,
     .max = 100,
     .def = "5",
     .desc = "`DATA_MISSING` (SPEC §6.7): percent of the expected (model, group) predictions "
             "absent from a day's groups that have an actual, above which it fires."},
    {.name = "alerts.weight_shift.max_change",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_shift_max),
     .min = 0,
     .max = 1,
     .def = "0.10",
     .desc = "`WEIGHT_SHIFT` (SPEC §6.9): absolute change of a model's weight, against the "
             "forecast `alerts.weight_shift.days` before, above which it fires."},
    {.name = "alerts.weight_shift.days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_shift_days),
     .min = 1,
     .max = 365,
     .def = "7",
     .desc = "`WEIGHT_SHIFT`: how far back the reference forecast is issued."},
    {.name = "alerts.feature_shift.change",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_fs_change),
     .flags = CONF_F_NO_MAX,
     .min = 0,
     .def = "0.20",
     .desc = "`FEATURE_SHIFT` (SPEC §6.6): relative change `|cur - ref| / ref` of a feature's "
             "normalised importance against its mean over the model's previous records, above "
             "which it fires."},
    {.name = "alerts.feature_shift.top_n",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_fs_top_n),
     .min = 1,
     .max = 256,
     .def = "10",
     .desc = "`FEATURE_SHIFT`: how many of the reference's most important features are "
             "judged (ties by name)."},
    {.name = "alerts.feature_shift.days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_fs_days),
     .min = 1,
     .max = 3650,
     .def = "30",
     .desc = "`FEATURE_SHIFT`: the reference holds the records with `computed_at` in "
             "`[t - days, t)` of a record computed at `t`."},
    {.name = "alerts.extreme_predictions.pct",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_extreme_pct),
     .min = 0,
     .max = 100,
     .def = "10",
     .desc = "`EXTREME_PREDICTIONS` (SPEC §6.3): percent of a horizon's forecasts of a UTC day "
             "(all series, each group's latest revision of the day) with `|z|` above "
             "`validation.z_max`, above which it fires."},
    {.name = "alerts.extreme_predictions.min_forecasts",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_extreme_min),
     .min = 1,
     .max = 100000000,
     .def = "10",
     .desc = "`EXTREME_PREDICTIONS`: forecasts a day needs to be judged."},
    {.name = "alerts.alert_storm.count",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_storm_count),
     .min = 0,
     .max = 1000000,
     .def = "5",
     .desc = "`ALERT_STORM` (SPEC §6.11): critical alerts started in the trailing window above "
             "which it fires."},
    {.name = "alerts.alert_storm.window_s",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_storm_window_s),
     .min = 1,
     .max = 86400 * 30,
     .def = "3600",
     .desc = "`ALERT_STORM`: the trailing window of event time, in seconds."},
    {.name = "alerts.data_stale.factor",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_stale_factor),
     .flags = CONF_F_MIN_EXCL | CONF_F_NO_MAX,
     .min = 0,
     .def = "2.0",
     .desc = "`DATA_STALE` (SPEC §6.7): a series is stale when the time since its newest "
             "actual exceeds the larger of `min_hours` and this times the largest gap between "
             "its consecutive actuals in the `lookback_days` before the newest; judged on the "
             "global watermark."},
    {.name = "alerts.data_stale.clock",
     .type = CONF_ENUM,
     .section = CONF_SEC_ALERTS,
     G(alerts_stale_wall),
     .def = "event",
     .values = stale_clock_values,
     .desc = "`DATA_STALE`'s clock: `event` judges a deadline on the global watermark (replays, "
             "the same with 1 worker or N; a series fires once its partition is consumed to "
             "its end), `wall` on the wall clock at each batch with records (live input: a "
             "series that stops while others in its partition go on; not for replays of old "
             "data, where every series is behind the wall clock)."},
    {.name = "alerts.data_stale.min_hours",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_stale_min_hours),
     .min = 1,
     .max = 24 * 3650,
     .def = "24",
     .desc = "`DATA_STALE`: the smallest allowed gap, in hours."},
    {.name = "alerts.data_stale.lookback_days",
     .type = CONF_INT,
     .section = CONF_SEC_ALERTS,
     G(alerts_stale_lookback_days),
     .min = 1,
     .max = 3650,
     .def = "90",
     .desc = "`DATA_STALE`: days before the newest actual whose gaps set the allowed gap."},
    {.name = "alerts.overfitting.critical_divergence",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_ALERTS,
     G(alerts_overfit_critical),
     .flags = CONF_F_NO_MAX,
     .min = 0,
     .def = "0.30",
     .desc = "`OVERFITTING` (SPEC §6.4) is critical above this divergence."},

    {.name = "validation.min_samples",
     .type = CONF_INT,
     .section = CONF_SEC_VALIDATION,
     G(validation_min_samples),
     .min = 2,
     .max = 1000000,
     .def = "10",
     .desc = "Actuals in the window needed before a z-score is computed."},
    {.name = "validation.z_reference",
     .type = CONF_ENUM,
     .section = CONF_SEC_VALIDATION,
     G(z_reference),
     .def = "change",
     .values = zref_values,
     .desc = "What the z-score measures: the implied move from the last actual (`change`), "
             "or the distance from the window mean (`level`, the seed's rule)."},
    {.name = "validation.z_max",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_VALIDATION,
     G(z_max),
     .flags = CONF_F_MIN_EXCL | CONF_F_NO_MAX,
     .min = 0,
     .def = "3.0",
     .desc = "A forecast with `|z|` above this is shrunk toward the reference."},
    {.name = "validation.shrink",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_VALIDATION,
     G(shrink),
     .min = 0,
     .max = 1,
     .def = "0.5",
     .desc = "Fraction of the distance from the reference that a shrunk forecast keeps; "
             "1 turns shrinking off."},
    {.name = "validation.window_days",
     .type = CONF_INT,
     .section = CONF_SEC_VALIDATION,
     G(validation_window_days),
     .min = 1,
     .max = 3650,
     .def = "30",
     .desc = "Length of the walk-forward validation windows (SPEC §6.8), aligned to the "
             "epoch. Trimming keeps what the earliest window not settled yet reads (its "
             "`window.days` before it), whatever `state.retention_days` says."},
    {.name = "validation.min_test_points",
     .type = CONF_INT,
     .section = CONF_SEC_VALIDATION,
     G(validation_min_test_points),
     .min = 1,
     .max = 1000000,
     .def = "15",
     .desc = "Targets a window needs before it can be judged overfitting."},
    {.name = "validation.divergence_max",
     .type = CONF_DOUBLE,
     .section = CONF_SEC_VALIDATION,
     G(validation_divergence_max),
     .flags = CONF_F_NO_MAX,
     .min = 0,
     .def = "0.20",
     .desc = "A window is overfitting when (test_rmse - val_rmse) / val_rmse is above this, "
             "test_rmse is above equal_test_rmse and it has enough targets; `OVERFITTING` "
             "(SPEC §6.4) is then a warning."},

    {.name = "emit.mode",
     .type = CONF_ENUM,
     .section = CONF_SEC_MODELS,
     G(emit_mode),
     .def = "every",
     .values = emit_values,
     .desc = "`every`: each change of a group is a new revision. `complete`: emit when the "
             "group is complete or closes; needs a configured model list (SPEC §5)."},
    {.name = "emit.min_models",
     .type = CONF_INT,
     .section = CONF_SEC_MODELS,
     G(emit_min_models),
     .min = 1,
     .max = CHORUS_MAX_MODELS,
     .def = "1",
     .desc = "With `emit.mode=complete`, the models a closing group needs to be emitted."},
    {.name = "models",
     .type = CONF_NAMES,
     .section = CONF_SEC_MODELS,
     G(models),
     .aux_off = offsetof(chorus_config_t, n_models),
     .flags = CONF_F_AUX,
     .max = CHORUS_MAX_MODELS,
     .def = "",
     .desc = "Comma list of the expected models of every horizon without its own list. "
             "Empty: the models that published in the window."},
    {.name = "horizons",
     .type = CONF_NAMES,
     .section = CONF_SEC_MODELS,
     G(horizons),
     .aux_off = offsetof(chorus_config_t, n_horizons),
     .flags = CONF_F_AUX,
     .max = 4096,
     .def = "",
     .desc = "Comma list of allowed horizons; a prediction for another horizon is a dead "
             "letter (`unknown_horizon`). Empty: any horizon."},
    {.name = "horizon.<horizon>.models",
     .type = CONF_NAMES,
     .scope = CONF_SCOPE_HORIZON,
     .section = CONF_SEC_MODELS,
     HORIZON(models),
     .aux_off = offsetof(chorus_horizon_conf_t, n_models),
     .flags = CONF_F_AUX,
     .max = CHORUS_MAX_MODELS,
     .desc = "Comma list of the expected models of one horizon; overrides `models`."},

    {.name = "series.<series>.min",
     .type = CONF_DOUBLE,
     .scope = CONF_SCOPE_SERIES,
     .section = CONF_SEC_SERIES,
     SERIES(min),
     .aux_off = offsetof(chorus_series_conf_t, has_min),
     .flags = CONF_F_AUX | CONF_F_NO_MIN | CONF_F_NO_MAX,
     .desc = "Lower clipping bound of the series' forecasts."},
    {.name = "series.<series>.max",
     .type = CONF_DOUBLE,
     .scope = CONF_SCOPE_SERIES,
     .section = CONF_SEC_SERIES,
     SERIES(max),
     .aux_off = offsetof(chorus_series_conf_t, has_max),
     .flags = CONF_F_AUX | CONF_F_NO_MIN | CONF_F_NO_MAX,
     .desc = "Upper clipping bound of the series' forecasts; must exceed the lower one "
             "when both are set."},
    {.name = "series.<series>.resolution",
     .type = CONF_DURATION,
     .scope = CONF_SCOPE_SERIES,
     .section = CONF_SEC_SERIES,
     SERIES(resolution_ms),
     .min = 1,
     .max = 3650 * DAY_MS,
     .desc = "Spacing of the series' actuals, i.e. its bucket width; overrides "
             "`resolution.default`."},

    {.name = "batch.max_records",
     .type = CONF_INT,
     .section = CONF_SEC_BATCH,
     G(batch_max_records),
     .min = 1,
     .max = 100000,
     .def = "1000",
     .desc = "Most records a worker takes into one batch (one Redis round trip)."},
    {.name = "batch.max_wait_ms",
     .type = CONF_INT,
     .section = CONF_SEC_BATCH,
     G(batch_max_wait_ms),
     .min = 0,
     .max = 60000,
     .def = "20",
     .desc = "Longest a worker waits to fill a batch before processing it: a record "
             "waits up to this long before its batch starts. Shorter batches hold more "
             "predictions whose actual is in the next batch."},
    {.name = "join.max_wait_ms",
     .type = CONF_INT,
     .section = CONF_SEC_BATCH,
     G(join_max_wait_ms),
     .min = 0,
     .max = 3600000,
     .def = "5000",
     .desc = "Longest (wall clock) a prediction is held waiting for its series' actuals and "
             "the regime indicator to reach its `issued_at` (SPEC §9.2). Longer makes replays "
             "deterministic under more lag; shorter bounds forecast latency."},

    {.name = "processing.guarantee",
     .type = CONF_ENUM,
     .section = CONF_SEC_BATCH,
     G(processing_guarantee),
     .def = "exactly_once",
     .values = guarantee_values,
     .desc = "`exactly_once`: outputs and input offsets commit in one Kafka transaction "
             "(consumers read with `isolation.level=read_committed`). `at_least_once`: outputs "
             "are flushed, then offsets committed; a crash can duplicate outputs."},
    {.name = "processing.max_attempts",
     .type = CONF_INT,
     .section = CONF_SEC_BATCH,
     G(processing_max_attempts),
     .min = 1,
     .max = 1000,
     .def = "3",
     .desc = "Attempts at processing a record before it goes to the dead-letter topic with "
             "reason `poison_pill`, so that one bad record cannot stall its partition."},

    {.name = "dlq.max_value_bytes",
     .type = CONF_INT,
     .section = CONF_SEC_BATCH,
     G(dlq_max_value_bytes),
     .min = 1024,
     .max = 900000,
     .def = "262144",
     .desc = "Longest key plus value a dead letter carries. The limit used is the least of "
             "this, the dead-letter topic's `max.message.bytes` (read at start) and the "
             "producer's `message.max.bytes`, the latter two less 2048 bytes for headers and "
             "framing (logged at start). A longer key plus value is cut, with the headers "
             "`chorus.error.truncated=true` and `chorus.source.value_bytes` / "
             "`chorus.source.key_bytes` (the original sizes); a dead letter the broker still "
             "refuses for good is sent again with 1 KiB, then headers only, then dropped "
             "(logged at error, `chorus_dead_letters_dropped_total`), so that a record too large "
             "for the dead-letter topic cannot stall its partition."},

    {.name = "log.level",
     .type = CONF_ENUM,
     .section = CONF_SEC_LOG,
     G(log_level),
     .def = "info",
     .values = log_values,
     .desc = "Most verbose level written to the log."},

    {.name = "rollout.canary_series",
     .type = CONF_NAMES,
     .section = CONF_SEC_ROLLOUT,
     G(canary_series),
     .aux_off = offsetof(chorus_config_t, n_canary_series),
     .flags = CONF_F_AUX,
     .max = 65536,
     .def = "",
     .desc = "Comma list of series the challenger serves in canary mode. Stored and "
             "validated only: rollout is a later feature. Also set by `CANARY_SYMBOLS`."},

    {.name = "worker.id",
     .type = CONF_STRING,
     .section = CONF_SEC_WORKER,
     G(worker_id),
     .def = "",
     .check = check_worker_id,
     .desc = "Names this worker instance. With `processing.guarantee = exactly_once` its "
             "Kafka `transactional.id` is `<group.id>-<worker.id>`, so the id must be unique "
             "among the live workers of a consumer group and stay the same across restarts "
             "of one instance: a restarted instance then fences its predecessor's open "
             "transaction at once instead of waiting for it to time out. Follows the naming "
             "rules of SPEC §1. Empty: automatic, `<hostname>-<n>`, where `n` (0, 1, 2, ...) is "
             "the lowest instance slot of this group on this host that no live worker holds "
             "(an exclusive lock on `chorus-<group>-<n>.lock` in `$CHORUS_LOCK_DIR`, else "
             "`$XDG_RUNTIME_DIR`, else `/tmp`; a worker that dies, even by `kill -9`, frees "
             "its slot for its replacement). Set it explicitly when the hostname changes "
             "across restarts (e.g. a container with a generated hostname: use a stable pod "
             "name), when two hosts share a hostname, or when workers of one host do not "
             "share a lock directory."},

    {.name = "http.listen",
     .type = CONF_STRING,
     .section = CONF_SEC_HTTP,
     G(http_listen),
     .def = "127.0.0.1:9464",
     .check = check_listen,
     .desc = "Address of the HTTP endpoints `/metrics` (Prometheus text format), `/healthz` and "
             "`/readyz`: `host:port`, `[ipv6]:port`, or a host name; port 0 picks a free port "
             "(logged). Empty: no endpoints. Use `0.0.0.0:9464` in a container."},
    {.name = "http.liveness_timeout_ms",
     .type = CONF_INT,
     .section = CONF_SEC_HTTP,
     G(http_liveness_ms),
     .min = 1000,
     .max = 3600000,
     .def = "60000",
     .desc = "`/healthz` answers 503 once the worker loop has not turned for this long. The "
             "loop turns at least every `batch.max_wait_ms` while idle and between retries; a "
             "batch's Kafka commit may block it for up to about 60 s in the worst case."},

    {.name = "kafka.<key>",
     .type = CONF_KAFKA,
     .scope = CONF_SCOPE_KAFKA,
     .section = CONF_SEC_KAFKA,
     .client = CHORUS_KAFKA_ANY,
     .desc = "Passed to librdkafka as `<key>` (e.g. `kafka.bootstrap.servers`), to the "
             "clients librdkafka documents the key for: consumer-only keys (`group.id`, "
             "`isolation.level`, ...) to the consumer, producer-only keys (`acks`, "
             "`linger.ms`, ...) to the producer, every other key to both. A key or value "
             "librdkafka rejects is an error."},
    {.name = "kafka.consumer.<key>",
     .type = CONF_KAFKA,
     .scope = CONF_SCOPE_KAFKA,
     .section = CONF_SEC_KAFKA,
     .client = CHORUS_KAFKA_CONSUMER,
     .desc = "Passed as `<key>` to the consumer only, after the `kafka.<key>` settings, so it "
             "wins over `kafka.<key>` there (e.g. `kafka.consumer.client.id`). A producer-only "
             "`<key>` is an error."},
    {.name = "kafka.producer.<key>",
     .type = CONF_KAFKA,
     .scope = CONF_SCOPE_KAFKA,
     .section = CONF_SEC_KAFKA,
     .client = CHORUS_KAFKA_PRODUCER,
     .desc = "Passed as `<key>` to the producer only, after the `kafka.<key>` settings, so it "
             "wins over `kafka.<key>` there (e.g. `kafka.producer.client.id`). A consumer-only "
             "`<key>` is an error."},
};

const size_t chorus_conf_props_cnt = sizeof(chorus_conf_props) / sizeof(chorus_conf_props[0]);

const conf_section_info_t chorus_conf_sections[CONF_SEC__COUNT] = {
    [CONF_SEC_TOPICS] = {"Topics",
                         "Each topic role has a name, a wire framing and a schema id; its record "
                         "type is fixed. Framing `confluent` is the byte 0x00, a 4-byte "
                         "big-endian schema id, then the Avro body; `bare` is the Avro body "
                         "alone, read with the topic's `schema_id`."},
    [CONF_SEC_SCHEMAS] = {"Writer schemas",
                          "Writer schemas registered by id, for input produced with a schema "
                          "other than the embedded reader schemas. `<id>` is a decimal schema "
                          "id; both keys of an id must be given."},
    [CONF_SEC_REDIS] = {"Redis", "Where all state lives (SPEC §9)."},
    [CONF_SEC_WINDOWS] = {"Windows and resolution",
                          "Durations take a unit: `ms`, `s`, `m`, `h`, `d`, `w`; a plain "
                          "number is milliseconds."},
    [CONF_SEC_WEIGHTS] = {"Weights", "How the models of a group are combined."},
    [CONF_SEC_VALIDATION] = {"Validation of the combined value",
                             "The z-guard of SPEC §5.2, which stops catastrophic forecasts."},
    [CONF_SEC_MODELS] = {"Models, horizons and emission",
                         "Name lists are comma-separated, sorted and de-duplicated; each name "
                         "follows the naming rules of SPEC §1."},
    [CONF_SEC_SERIES] = {"Per-series settings",
                         "`<series>` is a series name; quote it when it contains dots: "
                         "`series.\"BRK.B\".min = 20`."},
    [CONF_SEC_BATCH] = {"Batching and joins", "Throughput and latency of a worker."},
    [CONF_SEC_LOG] = {"Logging", "One line per event, with level and key=value fields."},
    [CONF_SEC_ALERTS] = {"Alerts",
                         "Monitoring rules of SPEC §6, evaluated at event-time day closes. "
                         "Percentages are percentage points of MAPE."},
    [CONF_SEC_ROLLOUT] = {"Rollout (reserved)",
                          "Profiles, canary and shadow (SPEC §8) are a later feature; these "
                          "keys are accepted and checked so that configurations can be "
                          "written ahead of it."},
    [CONF_SEC_WORKER] = {"Worker identity",
                         "How a worker instance names itself to Kafka (SPEC §9.1: a worker "
                         "killed and restarted converges)."},
    [CONF_SEC_HTTP] = {"HTTP endpoints",
                       "Metrics, liveness and readiness for Prometheus and orchestrators "
                       "(SPEC §10); see docs/operations.md for what each metric means."},
    [CONF_SEC_KAFKA] = {"Kafka passthrough",
                        "Every key under `kafka.` goes to librdkafka unchanged "
                        "(`rd_kafka_conf_set`); see librdkafka's CONFIGURATION.md for the "
                        "keys. Each client gets the plain keys that apply to it, then its own "
                        "overrides, after Chorus's defaults, so the user's settings win. "
                        "`check-config` runs each client's settings through librdkafka."},
};
