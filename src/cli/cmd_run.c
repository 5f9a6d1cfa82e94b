/*
 * `chorus run`: load the configuration, start a worker, run until SIGINT or
 * SIGTERM. Exit status: 0 clean stop, 1 runtime failure, 2 bad configuration.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/cli.h"
#include "chorus/log.h"
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

int chorus_cmd_run(int argc, char **argv) {
        const char *path = chorus_cli_config_path(argc, argv);
        chorus_config_t *cfg = chorus_config_new();
        chorus_worker_t *w;
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

        if (!(w = chorus_worker_new(cfg, errstr, sizeof(errstr)))) {
                chorus_log_error("worker", "msg=\"cannot start\" err=\"%s\"", errstr);
                chorus_config_destroy(cfg);
                return 1;
        }
        err = chorus_worker_run(w, &stop_requested, -1);
        chorus_worker_destroy(w);
        chorus_config_destroy(cfg);
        return err ? 1 : 0;
}
