/*
 * Unit tests of the metrics registry (src/metrics/metrics.c) and of the
 * worker telemetry's health rules (src/metrics/telemetry.c): the exposition
 * text, label escaping, cumulative histogram buckets, and the readiness
 * reasons of SPEC §9.4. No I/O: the HTTP server is tested in
 * tests/integration/test_http_endpoints.py.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chorus/config.h"
#include "chorus/metrics.h"
#include "chorus/telemetry.h"

static char *render(chorus_metrics_t *m) {
        size_t len;
        char *text = chorus_metrics_render(m, &len);
        cr_assert_eq(strlen(text), len);
        return text;
}

Test(metrics, counter_and_gauge_text) {
        chorus_metrics_t *m = chorus_metrics_new();
        const char *labels[] = {"topic", "partition"};
        const char *v1[] = {"chorus.actuals", "0"}, *v2[] = {"chorus.actuals", "1"};
        chorus_metric_t *c = chorus_metrics_add(m, CHORUS_METRIC_COUNTER, "t_in_total",
                                                "Records in.", 2, labels, NULL, 0);
        chorus_series_t *g = chorus_metric_series0(
            chorus_metrics_add(m, CHORUS_METRIC_GAUGE, "t_gauge", "A gauge.", 0, NULL, NULL, 0));
        char *text;

        chorus_series_add(chorus_metric_series(c, v1), 3);
        chorus_series_add(chorus_metric_series(c, v2), 1);
        chorus_series_add(chorus_metric_series(c, v1), 2);
        chorus_series_set(g, 0.25);
        text = render(m);
        cr_assert_str_eq(text, "# HELP t_in_total Records in.\n"
                               "# TYPE t_in_total counter\n"
                               "t_in_total{topic=\"chorus.actuals\",partition=\"0\"} 5\n"
                               "t_in_total{topic=\"chorus.actuals\",partition=\"1\"} 1\n"
                               "# HELP t_gauge A gauge.\n"
                               "# TYPE t_gauge gauge\n"
                               "t_gauge 0.25\n");
        cr_assert_eq(chorus_series_value(chorus_metric_series(c, v1)), 5);
        free(text);
        chorus_metrics_destroy(m);
}

Test(metrics, label_values_are_escaped_and_hidden_series_skipped) {
        chorus_metrics_t *m = chorus_metrics_new();
        const char *labels[] = {"reason"};
        const char *odd[] = {"a\"b\\c\nd"}, *other[] = {"x"};
        chorus_metric_t *c =
            chorus_metrics_add(m, CHORUS_METRIC_GAUGE, "t_odd", "Back\\slash.", 1, labels, NULL, 0);
        char *text;

        chorus_series_set(chorus_metric_series(c, odd), 1);
        chorus_series_show(chorus_metric_series(c, other), 0);
        text = render(m);
        cr_assert_str_eq(text, "# HELP t_odd Back\\\\slash.\n"
                               "# TYPE t_odd gauge\n"
                               "t_odd{reason=\"a\\\"b\\\\c\\nd\"} 1\n");
        free(text);
        chorus_metrics_destroy(m);
}

Test(metrics, histogram_buckets_are_cumulative) {
        chorus_metrics_t *m = chorus_metrics_new();
        const double bounds[] = {0.001, 0.1, 1};
        chorus_series_t *h = chorus_metric_series0(chorus_metrics_add(
            m, CHORUS_METRIC_HISTOGRAM, "t_seconds", "Latency.", 0, NULL, bounds, 3));
        char *text;

        chorus_series_observe(h, 0.0005);
        chorus_series_observe(h, 0.001); /* on the bound: le is inclusive */
        chorus_series_observe(h, 0.5);
        chorus_series_observe(h, 7);
        text = render(m);
        cr_assert_str_eq(text, "# HELP t_seconds Latency.\n"
                               "# TYPE t_seconds histogram\n"
                               "t_seconds_bucket{le=\"0.001\"} 2\n"
                               "t_seconds_bucket{le=\"0.1\"} 2\n"
                               "t_seconds_bucket{le=\"1\"} 3\n"
                               "t_seconds_bucket{le=\"+Inf\"} 4\n"
                               "t_seconds_sum 7.5015\n"
                               "t_seconds_count 4\n");
        free(text);
        chorus_metrics_destroy(m);
}

Test(telemetry, readiness_reasons_in_order) {
        chorus_config_t *cfg = chorus_config_new();
        chorus_telemetry_t *tm = chorus_telemetry_new(cfg, 60000, 1);
        const char *stats_up = "{\"brokers\":{\"b:9092/1\":{\"nodeid\":1,\"state\":\"UP\"}},"
                               "\"topics\":{}}";
        const char *stats_down = "{\"brokers\":{\"b:9092/1\":{\"nodeid\":1,\"state\":\"DOWN\"},"
                                 "\"b:9092/bootstrap\":{\"nodeid\":-1,\"state\":\"UP\"}}}";
        char why[256];

        cr_assert(chorus_telemetry_alive(tm, why, sizeof(why)));
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "redis: not connected yet");
        chorus_telemetry_redis_up(tm, 1);
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "kafka: no statistics yet");
        chorus_telemetry_kafka_stats(tm, stats_down, strlen(stats_down));
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "kafka: no broker connection");
        chorus_telemetry_kafka_stats(tm, stats_up, strlen(stats_up));
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "no input partitions assigned");
        chorus_telemetry_rebalance(tm, 1, 2);
        cr_assert(chorus_telemetry_ready(tm, why, sizeof(why)));
        chorus_telemetry_backoff(tm, "redis unavailable");
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "backing off: redis unavailable");
        chorus_telemetry_backoff(tm, NULL);
        chorus_telemetry_redis_up(tm, 0);
        cr_assert_not(chorus_telemetry_ready(tm, why, sizeof(why)));
        cr_assert_str_eq(why, "redis: unavailable");
        chorus_telemetry_destroy(tm);
        chorus_config_destroy(cfg);
}

Test(telemetry, consumer_lag_from_statistics) {
        chorus_config_t *cfg = chorus_config_new();
        chorus_telemetry_t *tm = chorus_telemetry_new(cfg, 60000, 1);
        const char *stats =
            "{\"topics\":{\"chorus.actuals\":{\"partitions\":{"
            "\"0\":{\"fetch_state\":\"active\",\"ls_offset\":120,\"app_offset\":100},"
            "\"1\":{\"fetch_state\":\"active\",\"ls_offset\":0,\"app_offset\":-1001,"
            "\"next_offset\":0},"
            "\"2\":{\"fetch_state\":\"none\",\"ls_offset\":50,\"app_offset\":10},"
            "\"-1\":{\"fetch_state\":\"none\"}}},"
            "\"other\":{\"partitions\":{\"0\":{\"fetch_state\":\"active\",\"ls_offset\":9,"
            "\"app_offset\":1}}}}}";
        char *text;

        chorus_telemetry_kafka_stats(tm, stats, strlen(stats));
        text = chorus_metrics_render(chorus_telemetry_metrics(tm), NULL);
        cr_assert(
            strstr(text, "chorus_consumer_lag{topic=\"chorus.actuals\",partition=\"0\"} 20\n"));
        cr_assert(
            strstr(text, "chorus_consumer_lag{topic=\"chorus.actuals\",partition=\"1\"} 0\n"));
        cr_assert_null(strstr(text, "partition=\"2\"} "));
        cr_assert_null(strstr(text, "topic=\"other\""));
        free(text);
        chorus_telemetry_destroy(tm);
        chorus_config_destroy(cfg);
}

Test(telemetry, alerts_by_type_state_and_severity) {
        chorus_config_t *cfg = chorus_config_new();
        chorus_telemetry_t *tm = chorus_telemetry_new(cfg, 60000, 1);
        char *text;

        chorus_telemetry_alert(tm, "MAPE_DEGRADATION", "firing", "warning");
        chorus_telemetry_alert(tm, "MAPE_DEGRADATION", "resolved", "warning");
        chorus_telemetry_alert(tm, "MAPE_DEGRADATION", "firing", "warning");
        text = chorus_metrics_render(chorus_telemetry_metrics(tm), NULL);
        cr_assert(strstr(text, "chorus_alerts_total{type=\"MAPE_DEGRADATION\",state=\"firing\","
                               "severity=\"warning\"} 2\n"));
        cr_assert(strstr(text, "chorus_alerts_total{type=\"MAPE_DEGRADATION\",state=\"resolved\","
                               "severity=\"warning\"} 1\n"));
        free(text);
        chorus_telemetry_destroy(tm);
        chorus_config_destroy(cfg);
}
