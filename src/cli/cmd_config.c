/*
 * `chorus check-config` and the hidden `chorus config-reference`.
 *
 * Both stay thin: loading, checking and documenting the configuration all
 * live in src/config, so `check-config` accepts exactly what `run` accepts
 * (file, then environment, then the cross-key checks) and the reference is
 * exactly the table the parser uses.
 *
 * Exit status of check-config: 0 valid, 2 invalid or bad usage, so scripts
 * can tell a broken file from a broken invocation only by the message; both
 * must stop a deployment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/cli.h"
#include "chorus/config.h"

extern char **environ;

static void check_config_usage(FILE *fp) {
        fputs("usage: chorus check-config [-c FILE | FILE]\n"
              "\n"
              "Validates FILE (default: $CHORUS_CONFIG) with the CHORUS_* and seed\n"
              "environment overrides applied, as `chorus run` would, without running.\n"
              "Exit status: 0 valid, 2 invalid.\n",
              fp);
}

int chorus_cmd_check_config(int argc, char **argv) {
        const char *path = NULL;
        chorus_config_t *cfg;
        char errstr[1024];
        int i;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i], *p = NULL;

                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        check_config_usage(stdout);
                        return 0;
                }
                if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
                        if (i + 1 == argc) {
                                fprintf(stderr, "chorus check-config: %s needs a file name\n", a);
                                return 2;
                        }
                        p = argv[++i];
                } else if (!strncmp(a, "--config=", 9)) {
                        p = a + 9;
                } else if (a[0] == '-' && a[1]) {
                        fprintf(stderr, "chorus check-config: unknown option '%s'\n", a);
                        check_config_usage(stderr);
                        return 2;
                } else {
                        p = a;
                }
                if (path) {
                        fprintf(stderr, "chorus check-config: more than one config file\n");
                        return 2;
                }
                path = p;
        }
        if (!path || !*path)
                path = getenv("CHORUS_CONFIG");
        if (!path || !*path) {
                fprintf(stderr, "chorus check-config: no config file (use -c FILE)\n");
                check_config_usage(stderr);
                return 2;
        }

        cfg = chorus_config_new();
        if (chorus_config_load(cfg, path, environ, errstr, sizeof(errstr))) {
                fprintf(stderr, "chorus check-config: %s\n", errstr);
                chorus_config_destroy(cfg);
                return 2;
        }
        chorus_config_destroy(cfg);
        printf("config OK: %s\n", path);
        return 0;
}

int chorus_cmd_config_reference(int argc, char **argv) {
        (void)argv;
        if (argc > 1) {
                fprintf(stderr, "usage: chorus config-reference\n");
                return 2;
        }
        if (chorus_config_write_reference(stdout)) {
                fprintf(stderr, "chorus config-reference: write error\n");
                return 1;
        }
        return 0;
}
