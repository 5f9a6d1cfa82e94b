/*
 * libFuzzer target for the configuration parser.
 *
 * The input is a config file, fed through chorus_config_load_buffer() and,
 * when it parses, chorus_config_finalize() and the accessors. An input whose
 * first byte is 0x01 is instead a list of environment entries, one per line
 * (VAR=value), fed through chorus_config_load_env(), so the CHORUS_* matcher
 * and the seed variables get the same treatment.
 *
 * Invariants checked: no crash, no leak (run with ASAN_OPTIONS=detect_leaks=1),
 * no undefined behaviour, and every error comes with a message.
 *
 * kafka.* keys that name plugins or interceptors are dropped before
 * finalize: librdkafka would dlopen() whatever path the fuzzer invents,
 * which tests librdkafka and the file system, not this parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/config.h"

static void drop_loader_keys(chorus_config_t *cfg) {
        size_t o = 0;

        for (size_t i = 0; i < cfg->n_kafka; i++) {
                if (strstr(cfg->kafka[i].key, "plugin") ||
                    strstr(cfg->kafka[i].key, "interceptor")) {
                        free(cfg->kafka[i].key);
                        free(cfg->kafka[i].value);
                        continue;
                }
                cfg->kafka[o++] = cfg->kafka[i];
        }
        cfg->n_kafka = o;
}

static void exercise(chorus_config_t *cfg) {
        char errstr[512];
        size_t n;

        drop_loader_keys(cfg);
        errstr[0] = '\0';
        if (chorus_config_finalize(cfg, errstr, sizeof(errstr)) != CHORUS_OK && !errstr[0])
                abort(); /* an error without a message */
        for (size_t i = 0; i < cfg->n_series_confs; i++)
                if (chorus_config_series(cfg, cfg->series_confs[i].name) != &cfg->series_confs[i])
                        abort(); /* the sorted-array invariant broke */
        for (size_t i = 0; i < cfg->n_horizon_confs; i++)
                (void)chorus_config_expected_models(cfg, cfg->horizon_confs[i].name, &n);
        for (size_t i = 0; i + 1 < cfg->n_models; i++)
                if (strcmp(cfg->models[i], cfg->models[i + 1]) >= 0)
                        abort(); /* lists are sorted and unique */
        (void)chorus_config_resolution_ms(cfg, "ZL");
        (void)chorus_config_horizon_allowed(cfg, "1w");
}

static void fuzz_env(chorus_config_t *cfg, const uint8_t *data, size_t size) {
        char *text = malloc(size + 1), **envp;
        size_t n = 1, k = 0;
        char errstr[512];

        if (!text)
                return;
        memcpy(text, data, size);
        text[size] = '\0';
        for (size_t i = 0; i < size; i++)
                n += text[i] == '\n';
        envp = calloc(n + 1, sizeof(*envp));
        if (!envp) {
                free(text);
                return;
        }
        for (char *line = text, *nl;; line = nl + 1) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                envp[k++] = line;
                if (!nl)
                        break;
        }
        errstr[0] = '\0';
        if (chorus_config_load_env(cfg, envp, errstr, sizeof(errstr)) == CHORUS_OK)
                exercise(cfg);
        else if (!errstr[0])
                abort();
        free(envp);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        chorus_config_t *cfg = chorus_config_new();
        char errstr[512];

        if (size > 0 && data[0] == 0x01) {
                fuzz_env(cfg, data + 1, size - 1);
        } else {
                errstr[0] = '\0';
                if (chorus_config_load_buffer(cfg, (const char *)data, size, "fuzz", errstr,
                                              sizeof(errstr)) == CHORUS_OK)
                        exercise(cfg);
                else if (!errstr[0])
                        abort();
        }
        chorus_config_destroy(cfg);
        return 0;
}
