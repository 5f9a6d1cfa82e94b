/*
 * Unit tests of the configuration module: defaults, the file syntax, every
 * error class, environment overrides (CHORUS_* and the seed variables),
 * finalize's cross-key checks and the generated reference.
 *
 * Pure logic plus temporary files; no servers. Environment tests pass their
 * own envp arrays, so they neither read nor change the process environment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>

#include "chorus/config.h"
#include "../../src/config/config_int.h"

#ifndef CHORUS_SOURCE_DIR
#define CHORUS_SOURCE_DIR "."
#endif

#define SCHEMA_FILE CHORUS_SOURCE_DIR "/schemas/regime_change.avsc"

static char err[2048];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static chorus_config_t *parse(const char *text, chorus_err_t *rc) {
        chorus_config_t *cfg = chorus_config_new();
        err[0] = '\0';
        *rc = chorus_config_load_buffer(cfg, text, strlen(text), "test.conf", err, sizeof(err));
        return cfg;
}

/* Parses text that must be valid and pass finalize. */
static chorus_config_t *parse_ok(const char *text) {
        chorus_err_t rc;
        chorus_config_t *cfg = parse(text, &rc);
        cr_assert_eq(rc, CHORUS_OK, "parse failed: %s", err);
        rc = chorus_config_finalize(cfg, err, sizeof(err));
        cr_assert_eq(rc, CHORUS_OK, "finalize failed: %s", err);
        return cfg;
}

/* Expects text to fail, at parse time or in finalize, with a message
 * containing every one of the NULL-terminated needles. */
static void expect_error(const char *text, ...) {
        chorus_err_t rc;
        chorus_config_t *cfg = parse(text, &rc);
        va_list ap;

        if (rc == CHORUS_OK)
                rc = chorus_config_finalize(cfg, err, sizeof(err));
        chorus_config_destroy(cfg);
        cr_assert_eq(rc, CHORUS_ERR_CONFIG, "accepted: %s", text);
        va_start(ap, text);
        for (const char *needle; (needle = va_arg(ap, const char *));)
                cr_assert(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
        va_end(ap);
}

static chorus_err_t env(chorus_config_t *cfg, char **envp) {
        err[0] = '\0';
        return chorus_config_load_env(cfg, envp, err, sizeof(err));
}

static char *write_temp(const char *text) {
        char *path = strdup("/tmp/chorus_test_config_XXXXXX");
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        return path;
}

static void remove_temp(char *path) {
        unlink(path);
        free(path);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

Test(config, defaults) {
        static const struct {
                chorus_topic_role_t role;
                const char *name;
                int32_t id;
                chorus_record_type_t type;
        } topics[] = {
            {CHORUS_TOPIC_PREDICTIONS, "chorus.predictions", 1, CHORUS_RECORD_PREDICTION},
            {CHORUS_TOPIC_ACTUALS, "chorus.actuals", 2, CHORUS_RECORD_ACTUAL},
            {CHORUS_TOPIC_INDICATORS, "chorus.indicators", 3, CHORUS_RECORD_INDICATOR},
            {CHORUS_TOPIC_FEATURE_IMPORTANCE, "chorus.feature-importance", 4,
             CHORUS_RECORD_FEATURE_IMPORTANCE},
            {CHORUS_TOPIC_FORECASTS, "chorus.forecasts", 5, CHORUS_RECORD_FORECAST},
            {CHORUS_TOPIC_ALERTS, "chorus.alerts", 6, CHORUS_RECORD_ALERT},
            {CHORUS_TOPIC_REGIMES, "chorus.regimes", 7, CHORUS_RECORD_REGIME_CHANGE},
            {CHORUS_TOPIC_VALIDATION, "chorus.validation", 8, CHORUS_RECORD_VALIDATION_WINDOW},
            {CHORUS_TOPIC_SHADOW, "chorus.shadow", 5, CHORUS_RECORD_FORECAST},
            {CHORUS_TOPIC_DLQ, "chorus.dlq", 0, CHORUS_RECORD__COUNT},
        };
        chorus_config_t *cfg = chorus_config_new();

        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
                const chorus_topic_conf_t *t = &cfg->topics[topics[i].role];
                cr_assert_str_eq(t->name, topics[i].name);
                cr_assert_eq(t->schema_id, topics[i].id, "%s", t->name);
                cr_assert_eq(t->framing, CHORUS_FRAMING_CONFLUENT);
                cr_assert_eq(t->type, topics[i].type);
        }
        cr_assert_str_eq(cfg->redis_host, "127.0.0.1");
        cr_assert_eq(cfg->redis_port, 6379);
        cr_assert_str_eq(cfg->redis_password, "");
        cr_assert_eq(cfg->redis_db, 0);
        cr_assert_eq(cfg->redis_timeout_ms, 5000);
        cr_assert_str_eq(cfg->redis_prefix, "chorus");
        cr_assert_eq(cfg->window_days, 30);
        cr_assert_eq(cfg->retention_days, 100);
        cr_assert_eq(cfg->resolution_ms, 86400000);
        cr_assert_eq(cfg->weights_method, CHORUS_WEIGHTS_EXP_INV_MAPE);
        cr_assert_str_eq(cfg->weights_method_name, "exp_inv_mape");
        cr_assert_eq(cfg->weights_min_samples, 5);
        cr_assert_eq(cfg->validation_min_samples, 10);
        cr_assert_eq(cfg->z_reference, CHORUS_ZREF_CHANGE);
        cr_assert_float_eq(cfg->z_max, 3.0, 0);
        cr_assert_float_eq(cfg->shrink, 0.5, 0);
        cr_assert_eq(cfg->emit_mode, CHORUS_EMIT_EVERY);
        cr_assert_eq(cfg->emit_min_models, 1);
        cr_assert_eq(cfg->n_models, 0);
        cr_assert_eq(cfg->n_horizons, 0);
        cr_assert_eq(cfg->n_horizon_confs, 0);
        cr_assert_eq(cfg->n_series_confs, 0);
        cr_assert_eq(cfg->n_schemas, 0);
        cr_assert_eq(cfg->n_kafka, 0);
        cr_assert_eq(cfg->n_canary_series, 0);
        cr_assert_eq(cfg->batch_max_records, 1000);
        cr_assert_eq(cfg->batch_max_wait_ms, 20);
        cr_assert_eq(cfg->join_max_wait_ms, 5000);
        cr_assert_eq(cfg->log_level, 2 /* info */);
        cr_assert_str_eq(cfg->worker_id, "", "automatic");
        cr_assert_eq(chorus_config_finalize(cfg, err, sizeof(err)), CHORUS_OK, "%s", err);
        cr_assert(chorus_config_horizon_allowed(cfg, "anything"));
        cr_assert_eq(chorus_config_resolution_ms(cfg, "ZL"), 86400000);
        chorus_config_destroy(cfg);
}

Test(config, destroy_accepts_null) {
        chorus_config_destroy(NULL);
        cr_assert(1, "no crash");
}

/* Every key the header documents resolves and accepts a valid value. */
Test(config, every_documented_key_exists) {
        static const char *const kv[][2] = {
            {"topic.predictions", "p"},
            {"topic.actuals", "a"},
            {"topic.indicators", "i"},
            {"topic.feature_importance", "f"},
            {"topic.forecasts", "fc"},
            {"topic.alerts", "al"},
            {"topic.regimes", "r"},
            {"topic.validation", "v"},
            {"topic.shadow", "s"},
            {"topic.dlq", "d"},
            {"topic.feature_importance.framing", "bare"},
            {"topic.dlq.schema_id", "0"},
            {"topic.shadow.schema_id", "2147483647"},
            {"schema.7.record", "regime_change"},
            {"schema.7.file", SCHEMA_FILE},
            {"redis.host", "redis"},
            {"redis.port", "6380"},
            {"redis.password", "s3cret"},
            {"redis.db", "2"},
            {"redis.timeout_ms", "100"},
            {"redis.key_prefix", "prod"},
            {"window.days", "20"},
            {"state.retention_days", "20"},
            {"resolution.default", "1h"},
            {"weights.method", "inv_mse"},
            {"weights.min_samples", "1000000"},
            {"validation.min_samples", "2"},
            {"validation.z_reference", "level"},
            {"validation.z_max", "2.5"},
            {"validation.shrink", "1"},
            {"emit.mode", "complete"},
            {"emit.min_models", "2"},
            {"models", "lstm,gb"},
            {"horizons", "1w,1m"},
            {"horizon.1w.models", "lstm"},
            {"series.ZL.min", "20"},
            {"series.ZL.max", "120"},
            {"series.ZL.resolution", "15m"},
            {"batch.max_records", "100000"},
            {"batch.max_wait_ms", "0"},
            {"join.max_wait_ms", "3600000"},
            {"log.level", "debug"},
            {"rollout.canary_series", "ZL"},
            {"worker.id", "ingest-a.3"},
            {"kafka.bootstrap.servers", "localhost:9092"},
            {"kafka.consumer.client.id", "chorus-in"},
            {"kafka.producer.client.id", "chorus-out"},
        };
        chorus_config_t *cfg = chorus_config_new();

        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
                cr_assert_eq(chorus_config_set(cfg, kv[i][0], kv[i][1], err, sizeof(err)),
                             CHORUS_OK, "%s: %s", kv[i][0], err);
        cr_assert_eq(chorus_config_finalize(cfg, err, sizeof(err)), CHORUS_OK, "%s", err);
        cr_assert_str_eq(cfg->topics[CHORUS_TOPIC_FEATURE_IMPORTANCE].name, "f");
        cr_assert_eq(cfg->topics[CHORUS_TOPIC_FEATURE_IMPORTANCE].framing, CHORUS_FRAMING_BARE);
        cr_assert_eq(cfg->topics[CHORUS_TOPIC_SHADOW].schema_id, 2147483647);
        cr_assert_eq(cfg->resolution_ms, 3600000);
        cr_assert_eq(cfg->weights_method, CHORUS_WEIGHTS_INV_MSE);
        cr_assert_eq(cfg->z_reference, CHORUS_ZREF_LEVEL);
        cr_assert_eq(cfg->log_level, 3);
        cr_assert_eq(cfg->join_max_wait_ms, 3600000);
        cr_assert_str_eq(cfg->redis_password, "s3cret");
        cr_assert_str_eq(cfg->worker_id, "ingest-a.3");
        chorus_config_destroy(cfg);
}

Test(config, weights_method_names) {
        cr_assert_str_eq(chorus_weights_method_name(CHORUS_WEIGHTS_EXP_INV_MAPE), "exp_inv_mape");
        cr_assert_str_eq(chorus_weights_method_name(CHORUS_WEIGHTS_EQUAL), "equal");
        cr_assert_str_eq(chorus_weights_method_name(CHORUS_WEIGHTS_INV_MAPE), "inv_mape");
        cr_assert_str_eq(chorus_weights_method_name(CHORUS_WEIGHTS_INV_MSE), "inv_mse");
}

/* ------------------------------------------------------------------------ */
/* File syntax                                                              */
/* ------------------------------------------------------------------------ */

Test(config, file_syntax) {
        const char *text = "\xEF\xBB\xBF# a comment\n"
                           "\n"
                           "   # an indented comment\n"
                           "window.days = 20   # trailing comment\r\n"
                           "series.\"BRK.B\".min = 20\n"
                           "series.\"BRK.B\".max=120.5\n"
                           "series.ZL.resolution = 1h\n"
                           "\"series\".\"ES\\\"X\".min = -5\n"
                           "redis.password = \"p#ss word \" # quoted keeps '#' and spaces\n"
                           "redis.key_prefix = a#b\n"
                           "models = lstm, gb ,arima_garch,gb\n"
                           "horizon.\"1.5w\".models = b,a\n"
                           "window.days = 25\n"
                           "\tweights.method\t=\tsimple_avg\n";
        chorus_config_t *cfg = parse_ok(text);
        const chorus_series_conf_t *s;
        const chorus_name_t *m;
        size_t n;

        cr_assert_eq(cfg->window_days, 25, "the later line wins");
        s = chorus_config_series(cfg, "BRK.B");
        cr_assert_not_null(s);
        cr_assert(s->has_min && s->has_max);
        cr_assert_float_eq(s->min, 20.0, 0);
        cr_assert_float_eq(s->max, 120.5, 0);
        cr_assert_eq(s->resolution_ms, 0);
        cr_assert_eq(chorus_config_resolution_ms(cfg, "BRK.B"), 86400000);
        cr_assert_eq(chorus_config_resolution_ms(cfg, "ZL"), 3600000);
        cr_assert_null(chorus_config_series(cfg, "BRK"));
        s = chorus_config_series(cfg, "ES\"X");
        cr_assert_not_null(s, "escaped quote in a quoted segment");
        cr_assert_float_eq(s->min, -5.0, 0);
        cr_assert_not(s->has_max);
        cr_assert_str_eq(cfg->redis_password, "p#ss word ");
        cr_assert_str_eq(cfg->redis_prefix, "a#b");

        cr_assert_eq(cfg->n_models, 3, "sorted and de-duplicated");
        cr_assert_str_eq(cfg->models[0], "arima_garch");
        cr_assert_str_eq(cfg->models[1], "gb");
        cr_assert_str_eq(cfg->models[2], "lstm");
        m = chorus_config_expected_models(cfg, "1.5w", &n);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(m[0], "a");
        cr_assert_str_eq(m[1], "b");
        m = chorus_config_expected_models(cfg, "1d", &n);
        cr_assert_eq(n, 3, "a horizon without its own list uses `models`");
        cr_assert_str_eq(m[0], "arima_garch");

        cr_assert_eq(cfg->weights_method, CHORUS_WEIGHTS_EQUAL);
        cr_assert_str_eq(cfg->weights_method_name, "simple_avg", "kept as configured");
        chorus_config_destroy(cfg);
}

Test(config, series_entries_sorted_for_lookup) {
        chorus_config_t *cfg = parse_ok("series.c.min = 1\nseries.a.min = 2\nseries.b.min = 3\n"
                                        "series.a.max = 4\n");
        cr_assert_eq(cfg->n_series_confs, 3);
        cr_assert_str_eq(cfg->series_confs[0].name, "a");
        cr_assert_str_eq(cfg->series_confs[1].name, "b");
        cr_assert_str_eq(cfg->series_confs[2].name, "c");
        cr_assert_float_eq(chorus_config_series(cfg, "c")->min, 1.0, 0);
        cr_assert_float_eq(chorus_config_series(cfg, "a")->max, 4.0, 0);
        chorus_config_destroy(cfg);
}

Test(config, horizons_and_expected_models) {
        chorus_config_t *cfg = parse_ok("horizons = 1w, 1m\n");
        size_t n = 99;

        cr_assert(chorus_config_horizon_allowed(cfg, "1w"));
        cr_assert(chorus_config_horizon_allowed(cfg, "1m"));
        cr_assert_not(chorus_config_horizon_allowed(cfg, "3m"));
        cr_assert_null(chorus_config_expected_models(cfg, "1w", &n));
        cr_assert_eq(n, 0, "no list configured: expected = the models that published");
        chorus_config_destroy(cfg);
}

Test(config, durations) {
        static const struct {
                const char *text;
                int64_t ms;
        } ok[] = {{"1d", 86400000}, {"1h", 3600000}, {"15m", 900000},   {"30s", 30000},
                  {"500ms", 500},   {"250", 250},    {"2w", 1209600000}};
        chorus_config_t *cfg = chorus_config_new();

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                cr_assert_eq(
                    chorus_config_set(cfg, "resolution.default", ok[i].text, err, sizeof(err)),
                    CHORUS_OK, "%s: %s", ok[i].text, err);
                cr_assert_eq(cfg->resolution_ms, ok[i].ms, "%s", ok[i].text);
        }
        chorus_config_destroy(cfg);
}

Test(config, empty_list_clears) {
        chorus_config_t *cfg = parse_ok("models = a,b\nmodels =\n");
        cr_assert_eq(cfg->n_models, 0);
        chorus_config_destroy(cfg);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

Test(config, error_unknown_key) {
        expect_error("window.days = 3\nweights.min_sample = 3\n",
                     "test.conf:2:", "weights.min_sample: unknown key",
                     "did you mean weights.min_samples?", NULL);
        expect_error("no.such.thing = 1\n", "no.such.thing: unknown key", NULL);
        expect_error("kafka = 1\n", "kafka: unknown key", NULL);
}

Test(config, error_unquoted_dotted_name_hints_quotes) {
        expect_error("series.BRK.B.min = 20\n", "series.BRK.B.min: unknown key", "quoted", NULL);
}

Test(config, error_out_of_range_names_range) {
        expect_error("weights.min_samples = 0\n",
                     "weights.min_samples: 0 is out of range [1, 1000000]", NULL);
        expect_error("window.days = 3651\n", "window.days: 3651 is out of range [1, 3650]", NULL);
        expect_error("validation.z_max = 0\n", "validation.z_max: 0 is out of range (0, +inf)",
                     NULL);
        expect_error("validation.shrink = 1.5\n", "validation.shrink: 1.5 is out of range [0, 1]",
                     NULL);
        expect_error("batch.max_records = 100001\n", "[1, 100000]", NULL);
        expect_error("join.max_wait_ms = -1\n", "join.max_wait_ms: -1 is out of range [0, 3600000]",
                     NULL);
        expect_error("topic.alerts.schema_id = 2147483648\n", "[0, 2147483647]", NULL);
        expect_error("emit.min_models = 0\n", "emit.min_models: 0 is out of range", NULL);
        expect_error("resolution.default = 0\n", "resolution.default: 0 is out of range [1ms, ",
                     NULL);
}

Test(config, error_bad_number) {
        expect_error("redis.port = 63x\n", "redis.port: \"63x\" is not an integer", NULL);
        expect_error("validation.z_max = nan\n", "validation.z_max: \"nan\" is not a finite number",
                     NULL);
        expect_error("series.ZL.min = \n", "series.ZL.min: \"\" is not a finite number", NULL);
}

Test(config, error_bad_enum_lists_values) {
        expect_error("emit.mode = sometimes\n",
                     "emit.mode: \"sometimes\" is not one of every, complete", NULL);
        expect_error("weights.method = best\n",
                     "weights.method:", "exp_inv_mape, equal, simple_avg, inv_mape, inv_mse", NULL);
        expect_error("topic.actuals.framing = raw\n", "confluent, bare", NULL);
        expect_error("schema.3.record = thing\n", "regime_change", "validation_window", NULL);
        expect_error("log.level = loud\n", "error, warn, info, debug", NULL);
}

Test(config, error_adahedge_not_implemented) {
        expect_error("weights.method = adahedge\n",
                     "weights.method: adahedge is not implemented yet", NULL);
}

Test(config, error_bad_duration) {
        expect_error("resolution.default = 1.5h\n",
                     "resolution.default: \"1.5h\" is not a duration", NULL);
        expect_error("series.ZL.resolution = 1y\n",
                     "series.ZL.resolution: \"1y\" is not a duration", NULL);
        expect_error("resolution.default = 99999999999999999999ms\n", "is not a duration", NULL);
        expect_error("resolution.default = 3651d\n", "out of range [1ms, 3650d]", NULL);
}

Test(config, error_bad_name_segment) {
        expect_error("series.\"a b\".min = 1\n",
                     "series.<series>.min: \"a b\" is not a valid series name", NULL);
        expect_error("series.__x.min = 1\n", "not a valid series name", NULL);
        expect_error("series.\"a|b\".min = 1\n", "not a valid series name", NULL);
        expect_error("horizon.\"\".models = a\n", "test.conf:1:", NULL);
        expect_error("models = a, b c\n", "models: \"b c\" is not a valid name", NULL);
        expect_error("models = a,,b\n", "models: empty name in list", NULL);
        expect_error("schema.x.file = /etc/hosts\n", "\"x\" is not a schema id", NULL);
        expect_error("schema.0.record = actual\n", "\"0\" is not a schema id", NULL);
}

Test(config, error_syntax) {
        expect_error("window.days 30\n", "test.conf:1: expected `key = value`", NULL);
        expect_error("= 30\n", "missing key", NULL);
        expect_error("series.\"ZL.min = 1\n", "unterminated quote in key", NULL);
        expect_error("redis.password = \"abc\n", "redis.password: unterminated quoted value", NULL);
        expect_error("redis.password = \"abc\" def\n", "unexpected text after quoted value", NULL);
        expect_error("series.x\"y\".min = 1\n", "quote may only enclose a whole key segment", NULL);
        expect_error("series..min = 1\n", "empty segment", NULL);
}

Test(config, error_nul_byte) {
        static const char text[] = "window.days = 3\0\n";
        chorus_config_t *cfg = chorus_config_new();
        chorus_err_t rc =
            chorus_config_load_buffer(cfg, text, sizeof(text) - 1, "nul.conf", err, sizeof(err));
        cr_assert_eq(rc, CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "nul.conf:1: NUL byte"), "%s", err);
        chorus_config_destroy(cfg);
}

Test(config, error_string_checks) {
        expect_error("redis.key_prefix = a{b}\n", "redis.key_prefix: \"a{b}\" must not contain '{'",
                     NULL);
        expect_error("redis.key_prefix = \"a b\"\n", "redis.key_prefix:", "whitespace", NULL);
        expect_error("redis.key_prefix = \n", "redis.key_prefix:", NULL);
        expect_error("redis.host = \n", "redis.host: \"\" must not be empty", NULL);
        expect_error("topic.alerts = bad/topic\n",
                     "topic.alerts: \"bad/topic\" is not a valid Kafka topic", NULL);
}

Test(config, failed_set_leaves_config_unchanged) {
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(chorus_config_set(cfg, "models", "a,b", err, sizeof(err)), CHORUS_OK);
        cr_assert_eq(chorus_config_set(cfg, "models", "c,d e", err, sizeof(err)),
                     CHORUS_ERR_CONFIG);
        cr_assert_eq(cfg->n_models, 2);
        cr_assert_str_eq(cfg->models[0], "a");
        cr_assert_eq(chorus_config_set(cfg, "series.ZL.min", "oops", err, sizeof(err)),
                     CHORUS_ERR_CONFIG);
        cr_assert_eq(cfg->n_series_confs, 0, "no empty series entry after a bad value");
        cr_assert_eq(chorus_config_set(cfg, "weights.method", "adahedge", err, sizeof(err)),
                     CHORUS_ERR_CONFIG);
        cr_assert_str_eq(cfg->weights_method_name, "exp_inv_mape");
        chorus_config_destroy(cfg);
}

Test(config, error_emit_complete_without_models) {
        expect_error("emit.mode = complete\n",
                     "emit.mode: complete requires a configured model list", NULL);
        chorus_config_destroy(parse_ok("emit.mode = complete\nmodels = a\n"));
        chorus_config_destroy(parse_ok("emit.mode = complete\nhorizon.1w.models = a\n"));
}

Test(config, error_retention_below_window) {
        expect_error("window.days = 60\nstate.retention_days = 59\n",
                     "state.retention_days: 59 is less than window.days (60)", NULL);
        chorus_config_destroy(parse_ok("window.days = 60\nstate.retention_days = 60\n"));
}

Test(config, error_series_min_not_below_max) {
        expect_error("series.\"BRK.B\".min = 10\nseries.\"BRK.B\".max = 10\n",
                     "series.\"BRK.B\".max: 10 must be greater than the min, 10", NULL);
        expect_error("series.ZL.min = 11\nseries.ZL.max = 10\n", "series.ZL.max", NULL);
        chorus_config_destroy(parse_ok("series.ZL.min = 10\n"));
}

Test(config, error_schema_pairs_and_files) {
        expect_error("schema.7.record = regime_change\n",
                     "schema.7.file: missing (schema.7.record is set", NULL);
        expect_error("schema.9.file = " SCHEMA_FILE "\n", "schema.9.record: missing", NULL);
        expect_error("schema.7.record = regime_change\nschema.7.file = /nonexistent/x.avsc\n",
                     "schema.7.file: cannot read \"/nonexistent/x.avsc\"", NULL);
        expect_error("schema.7.record = regime_change\nschema.7.file = /tmp\n",
                     "not a non-empty regular file", NULL);
        expect_error("schema.7.file =\n", "schema.7.file: \"\" must not be empty", NULL);
}

Test(config, schemas_registered) {
        chorus_config_t *cfg = parse_ok("schema.12.record = prediction\n"
                                        "schema.12.file = " SCHEMA_FILE "\n"
                                        "schema.3.record = indicator\n"
                                        "schema.3.file = " SCHEMA_FILE "\n");
        cr_assert_eq(cfg->n_schemas, 2);
        cr_assert_eq(cfg->schemas[0].id, 3, "sorted by id");
        cr_assert_eq(cfg->schemas[0].type, CHORUS_RECORD_INDICATOR);
        cr_assert_eq(cfg->schemas[1].id, 12);
        cr_assert_eq(cfg->schemas[1].type, CHORUS_RECORD_PREDICTION);
        cr_assert_str_eq(cfg->schemas[1].file, SCHEMA_FILE);
        chorus_config_destroy(cfg);
}

Test(config, error_topic_schema_of_other_type) {
        expect_error("schema.1.record = actual\nschema.1.file = " SCHEMA_FILE "\n",
                     "topic.predictions.schema_id: 1 is registered as actual by schema.1.record",
                     NULL);
}

Test(config, error_topics_must_differ) {
        expect_error("topic.shadow = chorus.forecasts\n",
                     "topic.shadow: \"chorus.forecasts\" is also topic.forecasts", NULL);
}

Test(config, error_horizon_models_outside_horizons) {
        expect_error("horizons = 1w\nhorizon.1m.models = a\n",
                     "horizon.1m.models: horizon \"1m\" is not in the `horizons` list", NULL);
}

Test(config, kafka_passthrough) {
        chorus_config_t *cfg = parse_ok("kafka.bootstrap.servers = a:9092\n"
                                        "kafka.group.id = chorus\n"
                                        "kafka.bootstrap.servers = b:9092\n"
                                        "kafka.acks = all\n");
        cr_assert_eq(cfg->n_kafka, 3);
        cr_assert_str_eq(cfg->kafka[0].key, "bootstrap.servers");
        cr_assert_str_eq(cfg->kafka[0].value, "b:9092", "a repeated key is replaced in place");
        cr_assert_str_eq(cfg->kafka[1].key, "group.id");
        cr_assert_str_eq(cfg->kafka[2].key, "acks");
        chorus_config_destroy(cfg);
}

Test(config, error_kafka_rejected_by_librdkafka) {
        expect_error("kafka.no.such.property = 1\n",
                     "kafka.no.such.property: rejected by librdkafka",
                     "No such configuration property", NULL);
        expect_error("kafka.session.timeout.ms = soon\n", "kafka.session.timeout.ms: rejected",
                     NULL);
        expect_error("kafka. = 1\n", "missing librdkafka key", NULL);
}

/* ------------------------------------------------------------------------ */
/* Kafka routing: plain keys by librdkafka's scope, then overrides          */
/* ------------------------------------------------------------------------ */

Test(config, kafka_applies_by_librdkafka_scope) {
        static const struct {
                const char *key;
                int consumer, producer;
        } cases[] = {
            {"group.id", 1, 0},
            {"group.instance.id", 1, 0},
            {"isolation.level", 1, 0},
            {"auto.offset.reset", 1, 0}, /* a topic-level consumer property */
            {"session.timeout.ms", 1, 0},
            {"enable.auto.commit", 1, 0},
            {"acks", 0, 1}, /* a topic-level producer property */
            {"linger.ms", 0, 1},
            {"queue.buffering.max.ms", 0, 1}, /* linger.ms is its alias */
            {"transactional.id", 0, 1},
            {"enable.idempotence", 0, 1},
            {"compression.type", 0, 1},
            {"bootstrap.servers", 1, 1},
            {"client.id", 1, 1},
            {"security.protocol", 1, 1},
            {"statistics.interval.ms", 1, 1},
            {"no.such.property", 1, 1}, /* unknown: both, and librdkafka judges it */
            {"Group.Id", 1, 1},         /* librdkafka names are case-sensitive */
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert_eq(!!chorus_config_kafka_applies(cases[i].key, CHORUS_KAFKA_CONSUMER),
                             cases[i].consumer, "%s on the consumer", cases[i].key);
                cr_assert_eq(!!chorus_config_kafka_applies(cases[i].key, CHORUS_KAFKA_PRODUCER),
                             cases[i].producer, "%s on the producer", cases[i].key);
                cr_assert(chorus_config_kafka_applies(cases[i].key, CHORUS_KAFKA_ANY));
        }
}

/* The scope table is librdkafka 2.0.2's; the linked librdkafka prints its
 * own (the C/P column of CONFIGURATION.md). Every property it lists must be
 * routed as it says, so an upgrade that changes a scope fails here. */
Test(config, kafka_scope_matches_linked_librdkafka) {
        char *doc = NULL, *save = NULL;
        size_t len = 0, rows = 0, one_sided = 0;
        FILE *fp = open_memstream(&doc, &len);

        cr_assert_not_null(fp);
        rd_kafka_conf_properties_show(fp);
        fclose(fp);
        for (char *line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char name[128], scope[8];
                int c, p;

                /* "name   |  C  | range | default | importance | description" */
                if (sscanf(line, "%127s | %7s |", name, scope) != 2 || !strcmp(name, "Property") ||
                    name[0] == '-' || name[0] == '#')
                        continue;
                c = !strcmp(scope, "C") || !strcmp(scope, "*");
                p = !strcmp(scope, "P") || !strcmp(scope, "*");
                cr_assert(c || p, "unexpected scope \"%s\" of %s", scope, name);
                cr_assert_eq(!!chorus_config_kafka_applies(name, CHORUS_KAFKA_CONSUMER), c,
                             "%s (%s) on the consumer", name, scope);
                cr_assert_eq(!!chorus_config_kafka_applies(name, CHORUS_KAFKA_PRODUCER), p,
                             "%s (%s) on the producer", name, scope);
                rows++;
                one_sided += !(c && p);
        }
        free(doc);
        cr_assert_gt(rows, 150, "parsed %zu properties", rows);
        cr_assert_gt(one_sided, 50, "parsed %zu one-client properties", one_sided);
}

Test(config, kafka_overrides_stored_after_plain_keys) {
        chorus_config_t *cfg = parse_ok("kafka.consumer.client.id = c1\n"
                                        "kafka.client.id = both\n"
                                        "kafka.producer.client.id = p\n"
                                        "kafka.group.id = g\n"
                                        "kafka.consumer.client.id = c2\n"
                                        "kafka.linger.ms = 7\n");
        static const struct {
                const char *key, *value;
                chorus_kafka_client_t client;
        } want[] = {
            {"client.id", "both", CHORUS_KAFKA_ANY},   {"group.id", "g", CHORUS_KAFKA_ANY},
            {"linger.ms", "7", CHORUS_KAFKA_ANY},      {"client.id", "c2", CHORUS_KAFKA_CONSUMER},
            {"client.id", "p", CHORUS_KAFKA_PRODUCER},
        };

        cr_assert_eq(cfg->n_kafka, sizeof(want) / sizeof(want[0]));
        for (size_t i = 0; i < cfg->n_kafka; i++) {
                cr_assert_str_eq(cfg->kafka[i].key, want[i].key, "entry %zu", i);
                cr_assert_str_eq(cfg->kafka[i].value, want[i].value, "entry %zu", i);
                cr_assert_eq(cfg->kafka[i].client, want[i].client, "entry %zu", i);
        }
        cr_assert(chorus_config_kafka_kv_applies(&cfg->kafka[1], CHORUS_KAFKA_CONSUMER));
        cr_assert_not(chorus_config_kafka_kv_applies(&cfg->kafka[1], CHORUS_KAFKA_PRODUCER));
        cr_assert(chorus_config_kafka_kv_applies(&cfg->kafka[0], CHORUS_KAFKA_PRODUCER));
        cr_assert_not(chorus_config_kafka_kv_applies(&cfg->kafka[3], CHORUS_KAFKA_PRODUCER));
        cr_assert(chorus_config_kafka_kv_applies(&cfg->kafka[4], CHORUS_KAFKA_PRODUCER));

        cr_assert_str_eq(chorus_config_kafka_get(cfg, "client.id", CHORUS_KAFKA_CONSUMER), "c2");
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "client.id", CHORUS_KAFKA_PRODUCER), "p");
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "group.id", CHORUS_KAFKA_CONSUMER), "g");
        cr_assert_null(chorus_config_kafka_get(cfg, "group.id", CHORUS_KAFKA_PRODUCER));
        cr_assert_null(chorus_config_kafka_get(cfg, "linger.ms", CHORUS_KAFKA_CONSUMER));
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "linger.ms", CHORUS_KAFKA_PRODUCER), "7");
        cr_assert_null(chorus_config_kafka_get(cfg, "acks", CHORUS_KAFKA_PRODUCER));
        chorus_config_destroy(cfg);
}

static void conf_expect(rd_kafka_conf_t *conf, const char *key, const char *want) {
        char buf[512];
        size_t size = sizeof(buf);

        cr_assert_eq(rd_kafka_conf_get(conf, key, buf, &size), RD_KAFKA_CONF_OK, "%s", key);
        cr_assert_str_eq(buf, want, "%s", key);
}

/* @p key is unset on @p conf, or set to something other than @p value. */
static void conf_lacks(rd_kafka_conf_t *conf, const char *key, const char *value) {
        char buf[512];
        size_t size = sizeof(buf);

        if (rd_kafka_conf_get(conf, key, buf, &size) == RD_KAFKA_CONF_OK)
                cr_assert_str_neq(buf, value, "%s", key);
}

/* What the worker does: its defaults, then the passthrough for the client. */
Test(config, kafka_apply_routes_each_client) {
        chorus_config_t *cfg = parse_ok("kafka.group.id = g\n"
                                        "kafka.linger.ms = 77\n"
                                        "kafka.client.id = both\n"
                                        "kafka.producer.client.id = out\n"
                                        "kafka.statistics.interval.ms = 1000\n");
        rd_kafka_conf_t *consumer = rd_kafka_conf_new(), *producer = rd_kafka_conf_new();

        cr_assert_eq(rd_kafka_conf_set(producer, "client.id", "default", err, sizeof(err)),
                     RD_KAFKA_CONF_OK);

        cr_assert_eq(
            chorus_config_kafka_apply(cfg, CHORUS_KAFKA_CONSUMER, consumer, err, sizeof(err)),
            CHORUS_OK, "%s", err);
        cr_assert_eq(
            chorus_config_kafka_apply(cfg, CHORUS_KAFKA_PRODUCER, producer, err, sizeof(err)),
            CHORUS_OK, "%s", err);
        conf_expect(consumer, "group.id", "g");
        conf_expect(consumer, "client.id", "both");
        conf_expect(consumer, "statistics.interval.ms", "1000");
        conf_lacks(consumer, "linger.ms", "77"); /* producer-only: not set */
        conf_expect(producer, "linger.ms", "77");
        conf_expect(producer, "client.id", "out"); /* the override wins, over a default too */
        conf_expect(producer, "statistics.interval.ms", "1000");
        conf_lacks(producer, "group.id", "g"); /* consumer-only: not set */
        rd_kafka_conf_destroy(consumer);
        rd_kafka_conf_destroy(producer);
        chorus_config_destroy(cfg);
}

Test(config, kafka_apply_names_the_key_as_written) {
        chorus_config_t *cfg = chorus_config_new();
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        cr_assert_eq(
            chorus_config_set(cfg, "kafka.consumer.session.timeout.ms", "soon", err, sizeof(err)),
            CHORUS_OK, "librdkafka judges values: %s", err);
        cr_assert_eq(chorus_config_kafka_apply(cfg, CHORUS_KAFKA_PRODUCER, conf, err, sizeof(err)),
                     CHORUS_OK, "not the producer's: %s", err);
        cr_assert_eq(chorus_config_kafka_apply(cfg, CHORUS_KAFKA_CONSUMER, conf, err, sizeof(err)),
                     CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "kafka.consumer.session.timeout.ms: rejected by librdkafka"), "%s",
                  err);
        rd_kafka_conf_destroy(conf);
        chorus_config_destroy(cfg);
}

Test(config, error_kafka_overrides) {
        expect_error("kafka.producer.group.id = g\n",
                     "kafka.producer.group.id: group.id is a consumer property, which the "
                     "producer does not read; set kafka.group.id or kafka.consumer.group.id",
                     NULL);
        expect_error("kafka.consumer.transactional.id = t\n",
                     "kafka.consumer.transactional.id: transactional.id is a producer property",
                     NULL);
        expect_error("kafka.consumer.no.such.property = 1\n",
                     "kafka.consumer.no.such.property: rejected by librdkafka",
                     "No such configuration property", NULL);
        expect_error("kafka.producer.linger.ms = soon\n",
                     "kafka.producer.linger.ms: rejected by librdkafka", NULL);
        expect_error("kafka.consumer. = 1\n",
                     "kafka.consumer.: missing librdkafka key after \"kafka.consumer.\"", NULL);
        expect_error("kafka.producer.\"a b\" = 1\n", "kafka.producer.",
                     "no whitespace or control characters", NULL);
        /* Without the dot it is a plain key, which librdkafka does not know. */
        expect_error("kafka.consumer = 1\n", "kafka.consumer: rejected by librdkafka", NULL);
        chorus_config_destroy(parse_ok("kafka.consumer.group.id = g\n"
                                       "kafka.producer.acks = all\n"
                                       "kafka.producer.bootstrap.servers = b:9092\n"));
}

Test(config, env_kafka_overrides) {
        char *path = write_temp("kafka.consumer.client.id = file-c\nkafka.client.id = file\n");
        char *envp[] = {"CHORUS_KAFKA_CONSUMER_CLIENT_ID=env-c",
                        "CHORUS_KAFKA_PRODUCER_LINGER_MS=9", "CHORUS_kafka_producer_ACKS=all",
                        NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(chorus_config_load(cfg, path, envp, err, sizeof(err)), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->n_kafka, 4);
        cr_assert_str_eq(cfg->kafka[0].key, "client.id");
        cr_assert_eq(cfg->kafka[0].client, CHORUS_KAFKA_ANY);
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "client.id", CHORUS_KAFKA_CONSUMER), "env-c",
                         "environment beats file");
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "client.id", CHORUS_KAFKA_PRODUCER), "file");
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "linger.ms", CHORUS_KAFKA_PRODUCER), "9");
        cr_assert_str_eq(chorus_config_kafka_get(cfg, "acks", CHORUS_KAFKA_PRODUCER), "all");
        cr_assert_eq(cfg->kafka[2].client, CHORUS_KAFKA_PRODUCER);
        cr_assert_str_eq(cfg->kafka[2].key, "linger.ms");
        chorus_config_destroy(cfg);
        remove_temp(path);
}

/* ------------------------------------------------------------------------ */
/* worker.id                                                                */
/* ------------------------------------------------------------------------ */

Test(config, worker_id) {
        chorus_config_t *cfg = parse_ok("worker.id = host-7.a_b\n");
        char *envp[] = {"CHORUS_WORKER_ID=pod-3", "CHORUS_LOCK_DIR=/run/chorus", NULL};
        char *clear[] = {"CHORUS_WORKER_ID=", NULL};

        cr_assert_str_eq(cfg->worker_id, "host-7.a_b");
        cr_assert_eq(env(cfg, envp), CHORUS_OK, "CHORUS_LOCK_DIR is not a key, but allowed: %s",
                     err);
        cr_assert_str_eq(cfg->worker_id, "pod-3");
        cr_assert_eq(env(cfg, clear), CHORUS_OK, "%s", err);
        cr_assert_str_eq(cfg->worker_id, "", "empty: automatic again");
        chorus_config_destroy(cfg);

        expect_error("worker.id = \"a b\"\n", "worker.id: \"a b\" is not a valid worker id",
                     "not starting with", "empty means automatic", NULL);
        expect_error("worker.id = a|b\n", "worker.id: \"a|b\" is not a valid worker id", NULL);
        expect_error("worker.id = __w\n", "worker.id: \"__w\" is not a valid worker id", NULL);
        {
                char line[300];
                snprintf(line, sizeof(line), "worker.id = %0129d\n", 0);
                expect_error(line, "is not a valid worker id", NULL);
                snprintf(line, sizeof(line), "worker.id = %0128d\n", 0);
                chorus_config_destroy(parse_ok(line));
        }
}

Test(config, error_file_names_file_and_line) {
        char *path = write_temp("window.days = 30\n\n# c\nwindow.days = zero\n");
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(chorus_config_load_file(cfg, path, err, sizeof(err)), CHORUS_ERR_CONFIG);
        cr_assert(!strncmp(err, path, strlen(path)), "%s", err);
        cr_assert(strstr(err, ":4: window.days: \"zero\" is not an integer"), "%s", err);
        chorus_config_destroy(cfg);
        remove_temp(path);

        cfg = chorus_config_new();
        cr_assert_eq(chorus_config_load_file(cfg, "/nonexistent/chorus.conf", err, sizeof(err)),
                     CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "/nonexistent/chorus.conf: cannot open"), "%s", err);
        chorus_config_destroy(cfg);
}

Test(config, error_message_escapes_user_text) {
        expect_error("redis.port = \"\x01\"\n", "\"\\x01\" is not an integer", NULL);
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

Test(config, env_overrides) {
        char *envp[] = {
            "PATH=/usr/bin",
            "CHORUS_WEIGHTS_MIN_SAMPLES=8",
            "CHORUS_SERIES_BRK.B_MIN=20",
            "CHORUS_SERIES_ES_F_MAX=7",
            "CHORUS_HORIZON_1w_MODELS=b,a",
            "CHORUS_SCHEMA_7_RECORD=regime_change",
            "CHORUS_SCHEMA_7_FILE=" SCHEMA_FILE,
            "CHORUS_TOPIC_PREDICTIONS=in.preds",
            "CHORUS_TOPIC_FEATURE_IMPORTANCE_FRAMING=bare",
            "CHORUS_REDIS_KEY_PREFIX=env",
            "chorus_lower_case_is_not_ours=1",
            "CHORUS_CONFIG=/does/not/matter",
            "CHORUS_TEST_TIMEOUT_MULTIPLIER=3",
            NULL,
        };
        chorus_config_t *cfg = chorus_config_new();
        const chorus_name_t *m;
        size_t n;

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        cr_assert_eq(chorus_config_finalize(cfg, err, sizeof(err)), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->weights_min_samples, 8);
        cr_assert_float_eq(chorus_config_series(cfg, "BRK.B")->min, 20.0, 0);
        cr_assert_float_eq(chorus_config_series(cfg, "ES_F")->max, 7.0, 0);
        m = chorus_config_expected_models(cfg, "1w", &n);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(m[0], "a");
        cr_assert_eq(cfg->n_schemas, 1);
        cr_assert_eq(cfg->schemas[0].id, 7);
        cr_assert_str_eq(cfg->topics[CHORUS_TOPIC_PREDICTIONS].name, "in.preds");
        cr_assert_eq(cfg->topics[CHORUS_TOPIC_FEATURE_IMPORTANCE].framing, CHORUS_FRAMING_BARE);
        cr_assert_str_eq(cfg->redis_prefix, "env");
        chorus_config_destroy(cfg);
}

Test(config, env_kafka_passthrough) {
        char *envp[] = {"CHORUS_KAFKA_BOOTSTRAP_SERVERS=k:9092",
                        "CHORUS_KAFKA_SESSION_TIMEOUT_MS=6000", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->n_kafka, 2);
        cr_assert_str_eq(cfg->kafka[0].key, "bootstrap.servers");
        cr_assert_str_eq(cfg->kafka[0].value, "k:9092");
        cr_assert_str_eq(cfg->kafka[1].key, "session.timeout.ms");
        cr_assert_eq(chorus_config_finalize(cfg, err, sizeof(err)), CHORUS_OK, "%s", err);
        chorus_config_destroy(cfg);
}

Test(config, env_errors_name_the_variable) {
        char *unknown[] = {"CHORUS_WEIGHTS_MIN_SAMPLE=3", NULL};
        char *range[] = {"CHORUS_WEIGHTS_MIN_SAMPLES=0", NULL};
        char *badname[] = {"CHORUS_SERIES_a b_MIN=1", NULL};
        char *kafka[] = {"CHORUS_KAFKA_NO_SUCH_THING=1", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, unknown), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "environment variable CHORUS_WEIGHTS_MIN_SAMPLE: no configuration "
                              "key matches it (did you mean CHORUS_WEIGHTS_MIN_SAMPLES?)"),
                  "%s", err);
        cr_assert_eq(env(cfg, range), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "environment variable CHORUS_WEIGHTS_MIN_SAMPLES: "
                              "weights.min_samples: 0 is out of range [1, 1000000]"),
                  "%s", err);
        cr_assert_eq(env(cfg, badname), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "CHORUS_SERIES_a b_MIN") && strstr(err, "not a valid series name"),
                  "%s", err);
        cr_assert_eq(env(cfg, kafka), CHORUS_OK, "librdkafka judges it in finalize");
        cr_assert_eq(chorus_config_finalize(cfg, err, sizeof(err)), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "kafka.no.such.thing: rejected by librdkafka"), "%s", err);
        chorus_config_destroy(cfg);
}

Test(config, env_seed_enable_models) {
        char *envp[] = {"ENABLE_LSTM=true", "ENABLE_ARIMA_GARCH=TRUE", "ENABLE_GB=false",
                        "ENABLE_XGB=yes",   "ENSEMBLE_MODEL_COUNT=4",  NULL};
        chorus_config_t *cfg = parse_ok("models = gb, XGB, prophet\n");

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        /* gb disabled; XGB kept with its configured spelling; prophet untouched. */
        cr_assert_eq(cfg->n_models, 4);
        cr_assert_str_eq(cfg->models[0], "XGB");
        cr_assert_str_eq(cfg->models[1], "arima_garch");
        cr_assert_str_eq(cfg->models[2], "lstm");
        cr_assert_str_eq(cfg->models[3], "prophet");
        cr_assert_eq(cfg->emit_min_models, 1, "with ENABLE_*, the count is only a check");
        chorus_config_destroy(cfg);
}

Test(config, env_seed_model_count_mismatch) {
        char *envp[] = {"ENABLE_LSTM=true", "ENABLE_GB=true", "ENSEMBLE_MODEL_COUNT=3", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, envp), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "ENSEMBLE_MODEL_COUNT") &&
                      strstr(err, "does not match the 2 models enabled"),
                  "%s", err);
        chorus_config_destroy(cfg);
}

Test(config, env_seed_model_count_alone_sets_min_models) {
        char *envp[] = {"ENSEMBLE_MODEL_COUNT=3", NULL};
        char *bad[] = {"ENSEMBLE_MODEL_COUNT=0", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->emit_min_models, 3);
        cr_assert_eq(env(cfg, bad), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "ENSEMBLE_MODEL_COUNT: emit.min_models: 0 is out of range"), "%s",
                  err);
        chorus_config_destroy(cfg);
}

Test(config, env_seed_bad_values) {
        char *notbool[] = {"ENABLE_LSTM=maybe", NULL};
        char *badmodel[] = {"ENABLE_=true", NULL};
        char *method[] = {"ENSEMBLE_OPTIMIZATION_METHOD=median", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, notbool), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "ENABLE_LSTM: expected true or false"), "%s", err);
        cr_assert_eq(env(cfg, badmodel), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "ENABLE_: not a valid model name"), "%s", err);
        cr_assert_eq(env(cfg, method), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "ENSEMBLE_OPTIMIZATION_METHOD: weights.method: \"median\""), "%s",
                  err);
        chorus_config_destroy(cfg);
}

Test(config, env_seed_method_and_canary) {
        char *envp[] = {"ENSEMBLE_OPTIMIZATION_METHOD=simple_avg", "CANARY_SYMBOLS=ZL,AAPL,ZL",
                        NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->weights_method, CHORUS_WEIGHTS_EQUAL);
        cr_assert_str_eq(cfg->weights_method_name, "simple_avg");
        cr_assert_eq(cfg->n_canary_series, 2);
        cr_assert_str_eq(cfg->canary_series[0], "AAPL");
        cr_assert_str_eq(cfg->canary_series[1], "ZL");
        chorus_config_destroy(cfg);
}

Test(config, env_chorus_wins_over_seed) {
        char *envp[] = {"CHORUS_WEIGHTS_METHOD=inv_mape", "ENSEMBLE_OPTIMIZATION_METHOD=equal",
                        NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(env(cfg, envp), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->weights_method, CHORUS_WEIGHTS_INV_MAPE);
        chorus_config_destroy(cfg);
}

Test(config, precedence_file_then_env) {
        char *path = write_temp("window.days = 40\nweights.min_samples = 7\n"
                                "kafka.client.id = from-file\n");
        char *envp[] = {"CHORUS_WINDOW_DAYS=50", "CHORUS_KAFKA_CLIENT_ID=from-env", NULL};
        chorus_config_t *cfg = chorus_config_new();

        cr_assert_eq(chorus_config_load(cfg, path, envp, err, sizeof(err)), CHORUS_OK, "%s", err);
        cr_assert_eq(cfg->window_days, 50, "environment beats file");
        cr_assert_eq(cfg->weights_min_samples, 7, "file beats default");
        cr_assert_eq(cfg->n_kafka, 1);
        cr_assert_str_eq(cfg->kafka[0].value, "from-env");
        chorus_config_destroy(cfg);
        remove_temp(path);
}

Test(config, load_uses_chorus_config_and_finalizes) {
        char *path = write_temp("emit.mode = complete\n");
        char var[256];
        char *envp[] = {var, NULL};
        chorus_config_t *cfg = chorus_config_new();

        snprintf(var, sizeof(var), "CHORUS_CONFIG=%s", path);
        cr_assert_eq(chorus_config_load(cfg, NULL, envp, err, sizeof(err)), CHORUS_ERR_CONFIG);
        cr_assert(strstr(err, "emit.mode: complete requires"), "file read and finalized: %s", err);
        chorus_config_destroy(cfg);
        remove_temp(path);
}

/* ------------------------------------------------------------------------ */
/* Reference                                                                */
/* ------------------------------------------------------------------------ */

Test(config, reference_lists_every_key) {
        char *doc = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&doc, &len);

        cr_assert_not_null(fp);
        cr_assert_eq(chorus_config_write_reference(fp), 0);
        fclose(fp);
        cr_assert_gt(chorus_conf_props_cnt, 40);
        for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                char needle[256], envname[256];
                snprintf(needle, sizeof(needle), "| `%s` |", chorus_conf_props[i].name);
                cr_assert(strstr(doc, needle), "reference lacks %s", chorus_conf_props[i].name);
                chorus_conf_prop_envname(&chorus_conf_props[i], envname, sizeof(envname));
                cr_assert(strstr(doc, envname), "reference lacks %s", envname);
        }
        cr_assert(strstr(doc, "| `join.max_wait_ms` | integer | `5000` | [0, 3600000] |"));
        cr_assert(strstr(doc, "`CHORUS_SERIES_<series>_MIN`"));
        cr_assert(strstr(doc, "`adahedge` (not implemented yet)"));
        cr_assert(strstr(doc, "| `kafka.consumer.<key>` | passthrough |"));
        cr_assert(strstr(doc, "`CHORUS_KAFKA_PRODUCER_<key>`"));
        cr_assert(strstr(doc, "| `worker.id` | string | *(empty)* |"));
        cr_assert(strstr(doc, "`CHORUS_LOCK_DIR`"));
        cr_assert(strstr(doc, "`|z|`") == NULL, "pipes inside cells are escaped");
        free(doc);
}
