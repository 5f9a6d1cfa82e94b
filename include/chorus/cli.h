/*
 * Subcommands of the `chorus` binary. Each takes the arguments after the
 * program name (argv[0] is the subcommand's own name) and returns the
 * process exit status.
 */
#ifndef CHORUS_CLI_H
#define CHORUS_CLI_H

/**
 * @brief `chorus check-config [-c FILE | FILE]`: load FILE (default:
 *        $CHORUS_CONFIG) and the environment as `run` would, and run every
 *        check without starting a worker.
 * @returns 0 and prints "config OK: FILE" to stdout, or 2 with the error
 *          (file:line: key: reason) on stderr.
 */
int chorus_cmd_check_config(int argc, char **argv);

/**
 * @brief Hidden `chorus config-reference`: print the Markdown configuration
 *        reference, generated from the key table, to stdout. This is what
 *        docs/configuration.md holds (scripts/check-docs.sh compares them).
 * @returns 0, or 1 on a write error.
 */
int chorus_cmd_config_reference(int argc, char **argv);

/**
 * @brief `chorus run [-c FILE]`: the worker, until SIGINT or SIGTERM.
 * @returns 0 on a clean stop, 1 on a runtime failure, 2 on a configuration error.
 */
int chorus_cmd_run(int argc, char **argv);

/**
 * @brief `chorus demo [--days N]`: the embedded demo (in-process mock Kafka
 *        cluster, private redis-server, generated data) with a summary.
 * @returns 0 when forecasts came out, 1 otherwise.
 */
int chorus_cmd_demo(int argc, char **argv);

/** @returns the config path from `-c FILE` / `--config FILE`, else $CHORUS_CONFIG, else NULL. */
const char *chorus_cli_config_path(int argc, char **argv);

#endif /* CHORUS_CLI_H */
