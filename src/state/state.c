/*
 * Redis state: connection, function loading, and the per-batch pipeline.
 *
 * Invariants:
 *  - One batch is one round trip: every command of the batch is formatted
 *    into `cmds` and written in one go; then every reply is read.
 *  - The formatted commands are kept until the next batch, so after a
 *    connection error the same bytes can be sent again on a new connection.
 *  - The functions are loaded (FUNCTION LOAD REPLACE) on every connect, so
 *    a Redis that restarted without its functions gets them back before the
 *    first command runs.
 *  - After any connection-level error the connection is dropped, never
 *    reused (hiredis leaves it in an undefined state), and the next
 *    connection kills the old one on the server before sending anything.
 *    A timed-out pipeline may still be running there: without the kill
 *    its remaining commands would interleave with the resent ones, and a
 *    record of a series could pass the watermark before an earlier one,
 *    which would then be taken for "replayed". Redis runs one command at a
 *    time, so once CLIENT KILL returns, what the old connection did is a
 *    prefix of the batch and the resend is exact.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "chorus/embedded.h"
#include "chorus/log.h"
#include "chorus/state.h"
#include "chorus/util.h"

struct chorus_state_s {
        const chorus_config_t *cfg;
        redisContext *ctx;

        char batch_id[64];
        char *cmds; /* formatted RESP commands of the batch */
        size_t cmds_len, cmds_cap;
        size_t n_cmds;

        redisReply **replies;
        size_t n_replies, replies_cap;

        char window_ms[24], retention_ms[24];
        char validation[96]; /* the functions' validation argument, "-" when off */

        /* CLIENT ID and local address of the last connection, so that a
         * reconnect can fence exactly that one (ids restart with Redis, so the
         * id alone could name another client): client_id 0 while none. */
        long long client_id;
        char client_addr[64];
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

int64_t chorus_bucket_of(int64_t t, int64_t resolution_ms) {
        return (t / resolution_ms) * resolution_ms;
}

void chorus_format_double(char *buf, size_t size, double v) {
        snprintf(buf, size, "%.17g", v);
}

static void free_replies(chorus_state_t *st) {
        for (size_t i = 0; i < st->n_replies; i++)
                if (st->replies[i])
                        freeReplyObject(st->replies[i]);
        st->n_replies = 0;
}

static void drop_connection(chorus_state_t *st) {
        if (st->ctx) {
                redisFree(st->ctx);
                st->ctx = NULL;
        }
}

/* Runs one command outside a batch and checks for an error reply. */
static chorus_err_t simple_command(chorus_state_t *st, int argc, const char **argv, char *errstr,
                                   size_t errstr_size) {
        redisReply *r = redisCommandArgv(st->ctx, argc, argv, NULL);

        if (!r) {
                snprintf(errstr, errstr_size, "redis %s: %s", argv[0], st->ctx->errstr);
                drop_connection(st);
                return CHORUS_ERR_REDIS;
        }
        if (r->type == REDIS_REPLY_ERROR) {
                snprintf(errstr, errstr_size, "redis %s: %s", argv[0], r->str);
                freeReplyObject(r);
                return CHORUS_ERR_REDIS;
        }
        freeReplyObject(r);
        return CHORUS_OK;
}

/* "ip:port" of our end of @p fd, as Redis shows it in CLIENT LIST addr=. */
static int local_address(int fd, char *buf, size_t size) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        char host[INET6_ADDRSTRLEN];

        if (getsockname(fd, (struct sockaddr *)&sa, &len))
                return -1;
        if (sa.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                snprintf(buf, size, "%s:%d", host, ntohs(in->sin_port));
        } else if (sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                snprintf(buf, size, "%s:%d", host, ntohs(in6->sin6_port));
        } else {
                return -1;
        }
        return 0;
}

chorus_err_t chorus_state_reconnect(chorus_state_t *st, char *errstr, size_t errstr_size) {
        const chorus_config_t *cfg = st->cfg;
        struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
        const char *lua = chorus_embedded_get("chorus.lua");
        chorus_err_t err;

        drop_connection(st);
        st->ctx = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
        if (!st->ctx || st->ctx->err) {
                snprintf(errstr, errstr_size, "redis connect %s:%d: %s", cfg->redis_host,
                         cfg->redis_port, st->ctx ? st->ctx->errstr : "out of memory");
                drop_connection(st);
                return CHORUS_ERR_REDIS;
        }
        redisSetTimeout(st->ctx, tv);
        redisEnableKeepAlive(st->ctx);

        if (cfg->redis_user && *cfg->redis_user) {
                const char *argv[] = {"AUTH", cfg->redis_user,
                                      cfg->redis_password ? cfg->redis_password : ""};
                if ((err = simple_command(st, 3, argv, errstr, errstr_size)))
                        goto fail;
        } else if (cfg->redis_password && *cfg->redis_password) {
                const char *argv[] = {"AUTH", cfg->redis_password};
                if ((err = simple_command(st, 2, argv, errstr, errstr_size)))
                        goto fail;
        }
        if (cfg->redis_db) {
                char db[16];
                const char *argv[] = {"SELECT", db};
                snprintf(db, sizeof(db), "%d", cfg->redis_db);
                if ((err = simple_command(st, 2, argv, errstr, errstr_size)))
                        goto fail;
        }
        if (st->client_id) {
                char id[24];
                const char *argv[] = {"CLIENT", "KILL", "ID", id, "ADDR", st->client_addr};
                redisReply *r;

                snprintf(id, sizeof(id), "%lld", st->client_id);
                r = redisCommandArgv(st->ctx, 6, argv, NULL);
                if (!r) {
                        snprintf(errstr, errstr_size, "redis CLIENT KILL: %s", st->ctx->errstr);
                        err = CHORUS_ERR_REDIS;
                        goto fail;
                }
                /* An error here means it is gone already: what we want. */
                freeReplyObject(r);
        }
        {
                const char *argv[] = {"CLIENT", "ID"};
                redisReply *r = redisCommandArgv(st->ctx, 2, argv, NULL);

                if (!r || r->type != REDIS_REPLY_INTEGER) {
                        snprintf(errstr, errstr_size, "redis CLIENT ID: %s",
                                 r ? (r->type == REDIS_REPLY_ERROR ? r->str : "bad reply")
                                   : st->ctx->errstr);
                        if (r)
                                freeReplyObject(r);
                        err = CHORUS_ERR_REDIS;
                        goto fail;
                }
                st->client_id = r->integer;
                freeReplyObject(r);
                if (local_address(st->ctx->fd, st->client_addr, sizeof(st->client_addr)))
                        st->client_id = 0; /* no address: no precise fence */
        }
        {
                const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", lua};
                if ((err = simple_command(st, 4, argv, errstr, errstr_size)))
                        goto fail;
        }
        return CHORUS_OK;

fail:
        drop_connection(st);
        return err;
}

/*
 * The validation argument of the functions (src/state/lua/55_validation.lua):
 * "L,window,method,min_samples,min_test_points,divergence_max", or "-" when
 * monitoring is off (no windows are closed, no forecast falls back).
 */
static void format_validation(const chorus_config_t *cfg, char *out, size_t cap) {
        static const char *const methods[] = {
            [CHORUS_WEIGHTS_EXP_INV_MAPE] = "exp_inv_mape",
            [CHORUS_WEIGHTS_EQUAL] = "equal",
            [CHORUS_WEIGHTS_INV_MAPE] = "inv_mape",
            [CHORUS_WEIGHTS_INV_MSE] = "inv_mse",
        };
        char div[32];

        if (!cfg->alerts_enabled) {
                snprintf(out, cap, "-");
                return;
        }
        chorus_format_double(div, sizeof(div), cfg->validation_divergence_max);
        snprintf(out, cap, "%lld,%lld,%s,%d,%d,%s",
                 (long long)cfg->validation_window_days * 86400000LL,
                 (long long)cfg->window_days * 86400000LL, methods[cfg->weights_method],
                 cfg->weights_min_samples, cfg->validation_min_test_points, div);
}

const char *chorus_state_validation(const chorus_state_t *st) {
        return st->validation;
}

chorus_state_t *chorus_state_new(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        chorus_state_t *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        st->cfg = cfg;
        snprintf(st->window_ms, sizeof(st->window_ms), "%lld",
                 (long long)cfg->window_days * 86400000LL);
        snprintf(st->retention_ms, sizeof(st->retention_ms), "%lld",
                 (long long)cfg->retention_days * 86400000LL);
        format_validation(cfg, st->validation, sizeof(st->validation));
        if (chorus_state_reconnect(st, errstr, errstr_size)) {
                chorus_state_destroy(st);
                return NULL;
        }
        return st;
}

void chorus_state_destroy(chorus_state_t *st) {
        if (!st)
                return;
        free_replies(st);
        free(st->replies);
        free(st->cmds);
        drop_connection(st);
        free(st);
}

/* ------------------------------------------------------------------ */
/* Server checks                                                       */
/* ------------------------------------------------------------------ */

/* CONFIG GET @p name: its value, malloc'd, or NULL with the reason (an
 * error reply such as a renamed/disabled CONFIG or an ACL NOPERM, or an
 * unknown parameter) in @p why. A connection error drops the connection
 * and sets *@p conn_err. */
static char *config_get(chorus_state_t *st, const char *name, int *conn_err, char *why,
                        size_t why_size) {
        const char *argv[] = {"CONFIG", "GET", name};
        redisReply *r = redisCommandArgv(st->ctx, 3, argv, NULL);
        char *v = NULL;

        if (!r) {
                snprintf(why, why_size, "%s", st->ctx->errstr);
                drop_connection(st);
                *conn_err = 1;
                return NULL;
        }
        if (r->type == REDIS_REPLY_ERROR)
                snprintf(why, why_size, "%s", r->str);
        else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 r->element[1]->type == REDIS_REPLY_STRING)
                v = strdup(r->element[1]->str);
        else
                snprintf(why, why_size, "no such parameter");
        freeReplyObject(r);
        return v;
}

chorus_err_t chorus_state_check_server(chorus_state_t *st, char *errstr, size_t errstr_size) {
        char why[256];
        char *policy, *aof = NULL, *save = NULL;
        int conn_err = 0;
        chorus_err_t err = CHORUS_OK;

        if (!st->ctx && (err = chorus_state_reconnect(st, errstr, errstr_size)))
                return err;
        policy = config_get(st, "maxmemory-policy", &conn_err, why, sizeof(why));
        if (conn_err) {
                snprintf(errstr, errstr_size, "redis CONFIG GET: %s", why);
                return CHORUS_ERR_REDIS;
        }
        if (!policy) {
                /* Managed services rename or forbid CONFIG: their policy is
                 * the operator's to check (docs/operations.md). */
                chorus_log_warn("state",
                                "msg=\"cannot read the Redis configuration; check that "
                                "maxmemory-policy is noeviction and persistence is on\" "
                                "err=\"%s\"",
                                why);
                return CHORUS_OK;
        }
        if (strcmp(policy, "noeviction")) {
                snprintf(errstr, errstr_size,
                         "redis maxmemory-policy is %s: Redis may evict Chorus state and lose it "
                         "silently; set maxmemory-policy noeviction",
                         policy);
                free(policy);
                return CHORUS_ERR_CONFIG;
        }
        free(policy);
        aof = config_get(st, "appendonly", &conn_err, why, sizeof(why));
        if (!conn_err && aof)
                save = config_get(st, "save", &conn_err, why, sizeof(why));
        if (conn_err) {
                snprintf(errstr, errstr_size, "redis CONFIG GET: %s", why);
                err = CHORUS_ERR_REDIS;
        } else if (!aof || !save) {
                chorus_log_warn("state",
                                "msg=\"cannot read the Redis persistence settings\" "
                                "err=\"%s\"",
                                why);
        } else if (strcmp(aof, "yes") && !*save) {
                chorus_log_warn("state", "msg=\"Redis persistence is off (appendonly no, no save "
                                         "points): a Redis restart loses all state\"");
        }
        free(aof);
        free(save);
        return err;
}

chorus_err_t chorus_state_ping(chorus_state_t *st, char *errstr, size_t errstr_size) {
        const char *argv[] = {"PING"};
        chorus_err_t err;

        if (!st->ctx && (err = chorus_state_reconnect(st, errstr, errstr_size)))
                return err;
        if ((err = simple_command(st, 1, argv, errstr, errstr_size)))
                drop_connection(st);
        return err;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

void chorus_state_batch_begin(chorus_state_t *st, const char *batch_id) {
        free_replies(st);
        st->cmds_len = 0;
        st->n_cmds = 0;
        snprintf(st->batch_id, sizeof(st->batch_id), "%s", batch_id);
}

size_t chorus_state_batch_size(const chorus_state_t *st) {
        return st->n_cmds;
}

static void append_command(chorus_state_t *st, int argc, const char **argv) {
        char *cmd = NULL;
        long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);

        if (len < 0 || !cmd) {
                fprintf(stderr, "chorus: out of memory formatting a Redis command\n");
                abort();
        }
        st->cmds = chorus_grow(st->cmds, &st->cmds_cap, st->cmds_len + (size_t)len, 1);
        memcpy(st->cmds + st->cmds_len, cmd, (size_t)len);
        st->cmds_len += (size_t)len;
        st->n_cmds++;
        redisFreeCommand(cmd);
}

static void base_key(const chorus_state_t *st, char *buf, size_t size, const char *series) {
        snprintf(buf, size, "%s:{%s}", st->cfg->redis_prefix, series);
}

void chorus_state_add_command(chorus_state_t *st, int argc, const char **argv) {
        append_command(st, argc, argv);
}

void chorus_state_base_key(const chorus_state_t *st, char *buf, size_t size, const char *series) {
        base_key(st, buf, size, series);
}

void chorus_state_add_actual(chorus_state_t *st, const chorus_actual_t *a,
                             const chorus_source_t *src, int64_t bucket) {
        char base[CHORUS_BASE_KEY_MAX], wm[300], off[24], b[24], obs[24], val[32], ep[24];
        const char *argv[] = {
            "FCALL",          "chorus_actual", "1", base,          wm, off, b, obs, val,
            st->retention_ms, st->window_ms,   ep,  st->validation};

        base_key(st, base, sizeof(base), a->series);
        snprintf(wm, sizeof(wm), "%s|%d", src->topic, (int)src->partition);
        snprintf(off, sizeof(off), "%lld", (long long)src->offset);
        snprintf(ep, sizeof(ep), "%lld", (long long)src->epoch);
        snprintf(b, sizeof(b), "%lld", (long long)bucket);
        snprintf(obs, sizeof(obs), "%lld", (long long)a->observed_at);
        chorus_format_double(val, sizeof(val), a->value);
        append_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

void chorus_state_add_prediction(chorus_state_t *st, const chorus_prediction_t *p,
                                 const chorus_source_t *src, int64_t bucket, int force,
                                 int want_expected) {
        char base[CHORUS_BASE_KEY_MAX], wm[300], off[24], b[24], iss[24], val[32], ep[24];
        char lo[32] = "", hi[32] = "";
        char record[CHORUS_TEXT_MAX + 160];
        const char *argv[] = {"FCALL",
                              "chorus_prediction",
                              "1",
                              base,
                              wm,
                              off,
                              st->batch_id,
                              force ? "1" : "0",
                              p->horizon,
                              p->model_id,
                              b,
                              iss,
                              val,
                              record,
                              st->window_ms,
                              st->retention_ms,
                              want_expected ? "1" : "0",
                              ep,
                              src->committed_batches,
                              st->validation};

        base_key(st, base, sizeof(base), p->series);
        snprintf(wm, sizeof(wm), "%s|%d", src->topic, (int)src->partition);
        snprintf(off, sizeof(off), "%lld", (long long)src->offset);
        snprintf(ep, sizeof(ep), "%lld", (long long)src->epoch);
        snprintf(b, sizeof(b), "%lld", (long long)bucket);
        snprintf(iss, sizeof(iss), "%lld", (long long)p->issued_at);
        chorus_format_double(val, sizeof(val), p->value);
        if (p->has_lower)
                chorus_format_double(lo, sizeof(lo), p->lower);
        if (p->has_upper)
                chorus_format_double(hi, sizeof(hi), p->upper);
        /* issued_at and value first: the functions read them by position.
         * target_time is there because two records of one bucket with
         * different target times are not exact duplicates. The model
         * version goes last because it is free text. */
        snprintf(record, sizeof(record), "%s|%s|%s|%s|%lld|%s%s", iss, val, lo, hi,
                 (long long)p->target_time, p->has_model_version ? "v" : "-",
                 p->has_model_version ? p->model_version : "");
        if (st->cfg->emit_mode == CHORUS_EMIT_COMPLETE) {
                /* The emit argument (65_emit_complete.lua): "<min_models>|<model>|...",
                 * the configured models of the horizon (none: the publishers). */
                char emit[24 + CHORUS_MAX_MODELS * (CHORUS_NAME_MAX + 1)];
                const char *argv_c[sizeof(argv) / sizeof(argv[0]) + 1];
                size_t n, len;
                const chorus_name_t *models =
                    chorus_config_expected_models(st->cfg, p->horizon, &n);

                len = (size_t)snprintf(emit, sizeof(emit), "%d", st->cfg->emit_min_models);
                for (size_t i = 0; i < n && len < sizeof(emit); i++)
                        len += (size_t)snprintf(emit + len, sizeof(emit) - len, "|%s", models[i]);
                memcpy(argv_c, argv, sizeof(argv));
                argv_c[sizeof(argv) / sizeof(argv[0])] = emit;
                append_command(st, (int)(sizeof(argv_c) / sizeof(argv_c[0])), argv_c);
                return;
        }
        append_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

void chorus_state_add_watermark_read(chorus_state_t *st, const char *series) {
        char key[CHORUS_BASE_KEY_MAX];
        const char *argv[] = {"GET", key};

        base_key(st, key, sizeof(key), series);
        strcat(key, ":aw");
        append_command(st, 2, argv);
}

chorus_err_t chorus_state_take_epochs(chorus_state_t *st, size_t n, const char *const *topics,
                                      const int32_t *partitions, int64_t *epochs, char *errstr,
                                      size_t errstr_size) {
        char key[400];
        chorus_err_t err;

        if (!st->ctx && (err = chorus_state_reconnect(st, errstr, errstr_size)))
                return err;
        for (size_t i = 0; i < n; i++) {
                const char *argv[] = {"INCR", key};
                snprintf(key, sizeof(key), "%s:epoch:{%s|%d}", st->cfg->redis_prefix, topics[i],
                         (int)partitions[i]);
                if (redisAppendCommandArgv(st->ctx, 2, argv, NULL) != REDIS_OK)
                        goto io_error;
        }
        for (size_t i = 0; i < n; i++) {
                redisReply *r = NULL;
                if (redisGetReply(st->ctx, (void **)&r) != REDIS_OK || !r)
                        goto io_error;
                if (r->type != REDIS_REPLY_INTEGER) {
                        snprintf(errstr, errstr_size, "redis INCR epoch: %s",
                                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                        freeReplyObject(r);
                        drop_connection(st); /* replies after it would be out of step */
                        return CHORUS_ERR_REDIS;
                }
                epochs[i] = r->integer;
                freeReplyObject(r);
        }
        return CHORUS_OK;

io_error:
        snprintf(errstr, errstr_size, "redis INCR epoch: %s",
                 st->ctx->errstr[0] ? st->ctx->errstr : "connection lost");
        drop_connection(st);
        return CHORUS_ERR_REDIS;
}

void chorus_state_add_release(chorus_state_t *st, const char *series, const char *topic,
                              int32_t partition, int64_t offset) {
        char base[CHORUS_BASE_KEY_MAX], wm[300], off[24];
        const char *argv[] = {"FCALL", "chorus_release", "1", base, wm, off};

        base_key(st, base, sizeof(base), series);
        snprintf(wm, sizeof(wm), "%s|%d", topic, (int)partition);
        snprintf(off, sizeof(off), "%lld", (long long)offset);
        append_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

static void dead_letter_key(const chorus_state_t *st, char *buf, size_t size, const char *topic,
                            int32_t partition) {
        snprintf(buf, size, "%s:dlq:{%s|%d}", st->cfg->redis_prefix, topic, (int)partition);
}

void chorus_state_add_dead_letter_seen(chorus_state_t *st, const char *topic, int32_t partition,
                                       int64_t offset) {
        char key[400], off[24];
        const char *argv[] = {"FCALL", "chorus_dead_letter_seen", "1", key, off};

        dead_letter_key(st, key, sizeof(key), topic, partition);
        snprintf(off, sizeof(off), "%lld", (long long)offset);
        append_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

void chorus_state_add_dead_letter_done(chorus_state_t *st, const char *topic, int32_t partition,
                                       int64_t committed, int64_t offset) {
        char key[400], com[24], off[24];
        const char *argv[] = {"FCALL", "chorus_dead_letter_done", "1", key, com, off};

        dead_letter_key(st, key, sizeof(key), topic, partition);
        snprintf(com, sizeof(com), "%lld", (long long)committed);
        snprintf(off, sizeof(off), "%lld", (long long)offset);
        append_command(st, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

chorus_err_t chorus_state_batch_exec(chorus_state_t *st, char *errstr, size_t errstr_size) {
        free_replies(st);
        if (st->n_cmds == 0)
                return CHORUS_OK;
        if (!st->ctx) {
                chorus_err_t err = chorus_state_reconnect(st, errstr, errstr_size);
                if (err)
                        return err;
        }
        if (redisAppendFormattedCommand(st->ctx, st->cmds, st->cmds_len) != REDIS_OK)
                goto io_error;
        st->replies = chorus_grow(st->replies, &st->replies_cap, st->n_cmds, sizeof(*st->replies));
        for (size_t i = 0; i < st->n_cmds; i++) {
                void *reply = NULL;
                if (redisGetReply(st->ctx, &reply) != REDIS_OK || !reply)
                        goto io_error;
                st->replies[st->n_replies++] = reply;
        }
        return CHORUS_OK;

io_error:
        snprintf(errstr, errstr_size, "redis pipeline of %zu commands: %s", st->n_cmds,
                 st->ctx->errstr[0] ? st->ctx->errstr : "connection lost");
        free_replies(st);
        drop_connection(st);
        return CHORUS_ERR_REDIS;
}

const redisReply *chorus_state_batch_reply(const chorus_state_t *st, size_t i) {
        return i < st->n_replies ? st->replies[i] : NULL;
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

chorus_apply_status_t chorus_state_reply_status(const redisReply *r) {
        static const struct {
                const char *name;
                chorus_apply_status_t status;
        } names[] = {
            {"applied", CHORUS_APPLY_APPLIED}, {"duplicate", CHORUS_APPLY_DUPLICATE},
            {"stale", CHORUS_APPLY_STALE},     {"replayed", CHORUS_APPLY_REPLAYED},
            {"hold", CHORUS_APPLY_HOLD},       {"reemit", CHORUS_APPLY_REEMIT},
            {"fenced", CHORUS_APPLY_FENCED},
        };

        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING)
                return CHORUS_APPLY_ERROR;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (!strcmp(r->element[0]->str, names[i].name))
                        return names[i].status;
        return CHORUS_APPLY_ERROR;
}

int64_t chorus_state_reply_watermark(const redisReply *r) {
        const redisReply *w = r;

        if (r && r->type == REDIS_REPLY_ARRAY) {
                chorus_apply_status_t status = chorus_state_reply_status(r);
                if (r->elements != 2 ||
                    (status != CHORUS_APPLY_HOLD && status != CHORUS_APPLY_APPLIED &&
                     status != CHORUS_APPLY_DUPLICATE && status != CHORUS_APPLY_STALE))
                        return -1;
                w = r->element[1];
        }
        if (w && w->type == REDIS_REPLY_INTEGER)
                return w->integer;
        if (w && w->type == REDIS_REPLY_STRING && w->len > 0) {
                char *end;
                long long v = strtoll(w->str, &end, 10);
                return *end ? -1 : v;
        }
        return -1;
}

static int parse_double(const redisReply *r, double *out) {
        char *end;

        if (r->type != REDIS_REPLY_STRING || r->len == 0)
                return -1;
        errno = 0;
        *out = strtod(r->str, &end);
        /* Not errno: strtod sets ERANGE for subnormals (1e-310), which are
         * exact and valid values here. */
        return (*end || !isfinite(*out)) ? -1 : 0;
}

/* A double computed by the state functions: 8 little-endian bytes
 * (struct.pack '<d' in chorus.lua), read by shifts so the host's byte order
 * does not matter. */
static int parse_binary_double(const redisReply *r, double *out) {
        uint64_t u = 0;

        if (r->type != REDIS_REPLY_STRING || r->len != 8)
                return -1;
        for (int i = 7; i >= 0; i--)
                u = (u << 8) | (unsigned char)r->str[i];
        memcpy(out, &u, sizeof(*out));
        return 0;
}

/* A sum from the state functions: finite, or +inf when a term was too
 * large to sum (see chorus.lua). NaN and -inf never come from them. */
static int parse_sum(const redisReply *r, double *out) {
        return (parse_binary_double(r, out) || isnan(*out) || *out == -INFINITY) ? -1 : 0;
}

static int parse_int(const redisReply *r, int64_t *out) {
        char *end;

        if (r->type == REDIS_REPLY_INTEGER) {
                *out = r->integer;
                return 0;
        }
        if (r->type != REDIS_REPLY_STRING || r->len == 0)
                return -1;
        errno = 0;
        *out = strtoll(r->str, &end, 10);
        return (*end || errno) ? -1 : 0;
}

static int parse_count(const redisReply *r, size_t *out) {
        if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
                return -1;
        *out = (size_t)r->integer;
        return 0;
}

static int cmp_model(const void *a, const void *b) {
        return strcmp(((const chorus_group_model_t *)a)->model,
                      ((const chorus_group_model_t *)b)->model);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void chorus_group_scratch_destroy(chorus_group_scratch_t *s) {
        free(s->models);
        free(s->publishers);
        free(s->spacings);
        memset(s, 0, sizeof(*s));
}

int chorus_state_parse_score_agg(const redisReply *r, chorus_score_agg_t *out) {
        /* {n_se, Σse, n_ape, Σape} */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
            parse_count(r->element[0], &out->n_se) || parse_sum(r->element[1], &out->se_sum) ||
            parse_count(r->element[2], &out->n_ape) || parse_sum(r->element[3], &out->ape_sum) ||
            out->n_ape > out->n_se)
                return -1;
        return 0;
}

/* An exact sum as its canonical components ({"inf"} when too large to
 * sum): *k components into c, and the correctly rounded sum (the first). */
static int parse_components(const redisReply *r, double *c, size_t *k, double *sum) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements > CHORUS_XSUM_COMPONENTS)
                return -1;
        *k = r->elements;
        for (size_t i = 0; i < r->elements; i++)
                if (parse_sum(r->element[i], &c[i]) || (isinf(c[i]) && r->elements != 1))
                        return -1;
        *sum = *k ? c[0] : 0.0;
        return 0;
}

/* n·S2 − S1², +inf when either sum was too large. */
static double css_of(size_t n, const double *c1, size_t k1, const double *c2, size_t k2) {
        if ((k1 && isinf(c1[0])) || (k2 && isinf(c2[0])))
                return INFINITY;
        return chorus_css_exact(n, c1, k1, c2, k2);
}

int chorus_state_parse_actual_agg(const redisReply *r, chorus_group_scratch_t *s,
                                  chorus_actual_agg_t *out) {
        double c1[CHORUS_XSUM_COMPONENTS], c2[CHORUS_XSUM_COMPONENTS], sq;
        size_t k1, k2, total = 0;
        const redisReply *h;

        /* {n, last_bucket, last_value, {Σv}, {Σv²}, n_d, {Σd}, {Σd²}, {spacing, count, ...}} */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 9 ||
            parse_count(r->element[0], &out->n) || parse_int(r->element[1], &out->last_bucket) ||
            parse_binary_double(r->element[2], &out->last_value) || !isfinite(out->last_value) ||
            parse_count(r->element[5], &out->n_diff) ||
            (h = r->element[8])->type != REDIS_REPLY_ARRAY || h->elements % 2)
                return -1;
        if (parse_components(r->element[3], c1, &k1, &out->sum) ||
            parse_components(r->element[4], c2, &k2, &sq))
                return -1;
        out->css = css_of(out->n, c1, k1, c2, k2);
        if (parse_components(r->element[6], c1, &k1, &out->diff_sum) ||
            parse_components(r->element[7], c2, &k2, &sq))
                return -1;
        out->diff_css = css_of(out->n_diff, c1, k1, c2, k2);

        s->spacings =
            chorus_grow(s->spacings, &s->spacings_cap, h->elements / 2 + 1, sizeof(*s->spacings));
        for (size_t j = 0; j < h->elements / 2; j++) {
                chorus_spacing_count_t *sc = &s->spacings[j];

                if (parse_int(h->element[2 * j], &sc->spacing) ||
                    parse_count(h->element[2 * j + 1], &sc->count) ||
                    (j && sc->spacing <= s->spacings[j - 1].spacing))
                        return -1;
                total += sc->count;
        }
        /* The distribution is that of the n − 1 consecutive spacings. */
        if (out->n_diff != (out->n ? out->n - 1 : 0) || total != out->n_diff)
                return -1;
        out->spacings = s->spacings;
        out->n_spacings = h->elements / 2;
        return 0;
}

/* The fields of a group view from @p el[0..n): revision, asof, models,
 * scores, actuals, expected and (since validation windows) overfitting. */
static chorus_err_t parse_view(const redisReply *const *el, size_t n, const char *series,
                               const char *horizon, int64_t bucket, chorus_group_scratch_t *s,
                               chorus_group_view_t *view) {
        const redisReply *models, *scores, *publishers;
        size_t n_models;

        if (n != 6 && n != 7)
                return CHORUS_ERR_STATE;
        models = el[2];
        scores = el[3];
        publishers = el[5];
        if (models->type != REDIS_REPLY_ARRAY || scores->type != REDIS_REPLY_ARRAY ||
            publishers->type != REDIS_REPLY_ARRAY || models->elements % 3 ||
            scores->elements != models->elements / 3 || models->elements == 0)
                return CHORUS_ERR_STATE;

        memset(view, 0, sizeof(*view));
        view->series = series;
        view->horizon = horizon;
        view->bucket = bucket;
        if (parse_int(el[0], &view->revision) || parse_int(el[1], &view->issued_at))
                return CHORUS_ERR_STATE;

        n_models = models->elements / 3;
        s->models = chorus_grow(s->models, &s->models_cap, n_models, sizeof(*s->models));
        for (size_t i = 0; i < n_models; i++) {
                chorus_group_model_t *m = &s->models[i];

                if (models->element[3 * i]->type != REDIS_REPLY_STRING)
                        return CHORUS_ERR_STATE;
                m->model = models->element[3 * i]->str;
                if (parse_int(models->element[3 * i + 1], &m->issued_at) ||
                    parse_double(models->element[3 * i + 2], &m->value) ||
                    chorus_state_parse_score_agg(scores->element[i], &m->scores))
                        return CHORUS_ERR_STATE;
        }
        qsort(s->models, n_models, sizeof(*s->models), cmp_model);
        view->models = s->models;
        view->n_models = n_models;

        if (chorus_state_parse_actual_agg(el[4], s, &view->actuals))
                return CHORUS_ERR_STATE;

        s->publishers = chorus_grow(s->publishers, &s->publishers_cap, publishers->elements + 1,
                                    sizeof(*s->publishers));
        for (size_t j = 0; j < publishers->elements; j++) {
                if (publishers->element[j]->type != REDIS_REPLY_STRING)
                        return CHORUS_ERR_STATE;
                s->publishers[j] = publishers->element[j]->str;
        }
        qsort(s->publishers, publishers->elements, sizeof(*s->publishers), cmp_str);
        view->publishers = s->publishers;
        view->n_publishers = publishers->elements;
        if (n == 7) {
                const redisReply *o = el[6];
                if (o->type != REDIS_REPLY_STRING || o->len != 1 ||
                    (o->str[0] != '0' && o->str[0] != '1'))
                        return CHORUS_ERR_STATE;
                view->overfitting = o->str[0] == '1';
        }
        return CHORUS_OK;
}

chorus_err_t chorus_state_parse_group(const redisReply *r, const char *series, const char *horizon,
                                      int64_t bucket, chorus_group_scratch_t *s,
                                      chorus_group_view_t *view) {
        /* {'applied' | 'reemit', revision, asof, models, scores, actuals, expected,
         *  overfitting}; a snapshot from a library before validation windows
         *  has no overfitting flag. */
        chorus_apply_status_t status = chorus_state_reply_status(r);
        if ((status != CHORUS_APPLY_APPLIED && status != CHORUS_APPLY_REEMIT) ||
            (r->elements != 7 && r->elements != 8))
                return CHORUS_ERR_STATE;
        return parse_view((const redisReply *const *)r->element + 1, r->elements - 1, series,
                          horizon, bucket, s, view);
}

/* emit.mode=complete replies: {status, {horizon, bucket, revision, ...}, ...}. */
static int is_complete_shape(const redisReply *r) {
        return r->elements == 1 || r->element[1]->type == REDIS_REPLY_ARRAY;
}

size_t chorus_state_reply_forecasts(const redisReply *r) {
        chorus_apply_status_t status = chorus_state_reply_status(r);

        if (status != CHORUS_APPLY_APPLIED && status != CHORUS_APPLY_REEMIT)
                return 0;
        return is_complete_shape(r) ? r->elements - 1 : 1;
}

chorus_err_t chorus_state_parse_forecast(const redisReply *r, size_t k, const char *series,
                                         const char *horizon, int64_t bucket,
                                         chorus_group_scratch_t *s, chorus_group_view_t *view) {
        const redisReply *g;
        int64_t b;

        if (k >= chorus_state_reply_forecasts(r))
                return CHORUS_ERR_STATE;
        if (!is_complete_shape(r))
                return chorus_state_parse_group(r, series, horizon, bucket, s, view);
        g = r->element[1 + k];
        if (g->type != REDIS_REPLY_ARRAY || g->elements != 9 ||
            g->element[0]->type != REDIS_REPLY_STRING || g->element[0]->len == 0 ||
            parse_int(g->element[1], &b))
                return CHORUS_ERR_STATE;
        return parse_view((const redisReply *const *)g->element + 2, g->elements - 2, series,
                          g->element[0]->str, b, s, view);
}

chorus_err_t chorus_state_model_stats(chorus_state_t *st, const char *series, const char *horizon,
                                      const char *model, int64_t asof, chorus_model_stats_t *out) {
        char base[CHORUS_BASE_KEY_MAX], at[24], errstr[256];
        const char *argv[] = {"FCALL", "chorus_model_stats", "1", base, horizon, model,
                              at,      st->window_ms};
        chorus_score_agg_t agg;
        redisReply *r;
        chorus_err_t err = CHORUS_OK;

        if (!st->ctx && chorus_state_reconnect(st, errstr, sizeof(errstr)))
                return CHORUS_ERR_REDIS;
        base_key(st, base, sizeof(base), series);
        snprintf(at, sizeof(at), "%lld", (long long)asof);
        if (!(r = redisCommandArgv(st->ctx, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL))) {
                drop_connection(st);
                return CHORUS_ERR_REDIS;
        }
        if (chorus_state_parse_score_agg(r, &agg))
                err = CHORUS_ERR_STATE;
        else
                chorus_score_stats_from_agg(&agg, out);
        freeReplyObject(r);
        return err;
}
