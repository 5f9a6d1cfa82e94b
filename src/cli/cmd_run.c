/*
 * `chorus run`: load the configuration, check that Redis keeps state safely,
 * start a worker, run until SIGINT or SIGTERM. Exit status: 0 clean stop,
 * 1 runtime failure, 2 bad configuration (of Chorus, or a Redis whose
 * maxmemory-policy could evict state).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/cli.h"
#include "chorus/http.h"
#include "chorus/log.h"
#include "chorus/state.h"
#include "chorus/telemetry.h"
#include "chorus/worker.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
}

/* -c FILE, --config FILE, or $CHORUS_CONFIG. */
const char *chorus_cli_config_path(int argc, char **argv) {
        for (int i = 1; i < argc - 1; i++)
                if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
                        return argv[i + 1];
        return getenv("CHORUS_CONFIG");
}

/* One connection, closed again, for chorus_state_check_server(). */
static chorus_err_t check_redis(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        chorus_state_t *st = chorus_state_new(cfg, errstr, errstr_size);
        chorus_err_t err;

        if (!st)
                return CHORUS_ERR_REDIS;
        err = chorus_state_check_server(st, errstr, errstr_size);
        chorus_state_destroy(st);
        return err;
}

/* The endpoints of http.listen (none when it is empty). They come up
 * before the worker connects to Kafka, so /healthz answers and /readyz
 * says "starting" (no partitions) during a slow start. */
static chorus_err_t start_http(const chorus_config_t *cfg, chorus_telemetry_t **tm,
                               chorus_http_t **http, char *errstr, size_t errstr_size) {
        const char *stats =
            chorus_config_kafka_get(cfg, "statistics.interval.ms", CHORUS_KAFKA_CONSUMER);

        if (!*cfg->http_listen)
                return CHORUS_OK;
        *tm = chorus_telemetry_new(cfg, cfg->http_liveness_ms, !stats || strcmp(stats, "0"));
        if (!(*http = chorus_http_start(cfg->http_listen, *tm, errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        chorus_log_info("http", "msg=\"serving /metrics, /healthz, /readyz\" listen=%s port=%d",
                        cfg->http_listen, chorus_http_port(*http));
        return CHORUS_OK;
}

int chorus_cmd_run(int argc, char **argv) {
        const char *path = chorus_cli_config_path(argc, argv);
        chorus_config_t *cfg = chorus_config_new();
        chorus_worker_t *w;
        chorus_telemetry_t *tm = NULL;
        chorus_http_t *http = NULL;
        struct sigaction sa = {0};
        char errstr[1024];
        chorus_err_t err;

        if (chorus_config_load(cfg, path, environ, errstr, sizeof(errstr))) {
                fprintf(stderr, "chorus: %s\n", errstr);
                chorus_config_destroy(cfg);
                return 2;
        }
        chorus_log_level = cfg->log_level;
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        /* Before any Kafka client exists: a refused Redis leaves no
         * consumer-group member or transactional id behind. */
        if ((err = check_redis(cfg, errstr, sizeof(errstr)))) {
                chorus_log_error("worker", "msg=\"cannot start\" err=\"%s\"", errstr);
                chorus_config_destroy(cfg);
                return err == CHORUS_ERR_CONFIG ? 2 : 1;
        }
        if ((err = start_http(cfg, &tm, &http, errstr, sizeof(errstr)))) {
                chorus_log_error("http", "msg=\"cannot start\" err=\"%s\"", errstr);
                chorus_telemetry_destroy(tm);
                chorus_config_destroy(cfg);
                return 2;
        }
        if (!(w = chorus_worker_new(cfg, errstr, sizeof(errstr)))) {
                chorus_log_error("worker", "msg=\"cannot start\" err=\"%s\"", errstr);
                chorus_http_stop(http);
                chorus_telemetry_destroy(tm);
                chorus_config_destroy(cfg);
                return 1;
        }
        chorus_worker_set_telemetry(w, tm);
        err = chorus_worker_run(w, &stop_requested, -1);
        chorus_worker_destroy(w);
        chorus_http_stop(http);
        chorus_telemetry_destroy(tm);
        chorus_config_destroy(cfg);
        return err ? 1 : 0;
}
