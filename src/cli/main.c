/*
 * `chorus`: one binary, one subcommand per job. Each subcommand lives in its
 * own file; this file only dispatches through the table below.
 */
#include <stdio.h>
#include <string.h>

#include "chorus/cli.h"

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *help; /* NULL: hidden */
} commands[] = {
    {"run", chorus_cmd_run, "run the worker: chorus run -c FILE"},
    {"check-config", chorus_cmd_check_config,
     "validate a config file: chorus check-config -c FILE"},
    {"demo", chorus_cmd_demo, "run the embedded demo (in-process Kafka, private Redis)"},
    {"config-reference", chorus_cmd_config_reference, NULL},
};

static void usage(FILE *fp) {
        fprintf(fp, "usage: chorus COMMAND [options]\n\ncommands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (commands[i].help)
                        fprintf(fp, "  %-14s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (!strcmp(argv[1], commands[i].name))
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "chorus: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
