/*
 * agg_cost: per-record cost of the state functions against window length
 * (issue #4, "Cost growth": within 1.5x from 30 to 43,200 points per window).
 *
 * For each size P (points per 30-day window: 30 daily, 720 hourly, 43,200
 * minute buckets) it starts from an empty Redis, preloads one series with P
 * buckets of actuals and of predictions from M models (so every window is
 * full), then times, at the steady state where every call moves the cursors
 * by one bucket:
 *   pair   N rounds of one chorus_actual and M chorus_prediction calls
 *          (retention trimming included);
 *   pred   then N rounds of M chorus_prediction calls, their actuals loaded
 *          beforehand (untimed).
 * Calls are pipelined (--pipeline per round trip), as the worker sends them.
 * It reports wall-clock µs per call and Redis CPU µs per call (INFO cpu of
 * the server, which is all this process talks to), and memory (MEMORY
 * USAGE): the scored points and publish times of one (series, horizon,
 * model), which grow with the points stored (the window plus what the
 * 100-day retention keeps), and the aggregate keys (sa/sp of the model,
 * aa/ap of the series), which do not.
 *
 * --lua FILE loads another version of the functions (e.g. the pre-aggregate
 * chorus.lua from git) for a comparison; --points a,b,c picks the sizes.
 * Output: a table on stdout and one JSON line per size on stderr.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "chorus/embedded.h"
#include "chorus/redis_server.h"

#define DAY    INT64_C(86400000)
#define T0     INT64_C(1704067200000)
#define WINDOW (30 * DAY)
#define RETAIN (100 * DAY)

static redisContext *rc;
static chorus_redis_server_t srv;
static int pipeline = 100, n_models = 1;
static long pending;
static const char *base = "bench:{S}";

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const redisReply *r) {
        fprintf(stderr, "agg_cost: %s: %s\n", what,
                r && r->type == REDIS_REPLY_ERROR ? r->str
                : rc                              ? rc->errstr
                                                  : "?");
        chorus_redis_server_stop(&srv);
        exit(1);
}

static void drain(void) {
        for (; pending > 0; pending--) {
                redisReply *r;

                if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                        die("reply", NULL);
                if (r->type == REDIS_REPLY_ERROR)
                        die("function", r);
                freeReplyObject(r);
        }
}

static void send_argv(int argc, const char **argv) {
        redisAppendCommandArgv(rc, argc, argv, NULL);
        if (++pending >= pipeline)
                drain();
}

static long seq;

static int64_t retain = RETAIN;

static void actual(int64_t bucket, int64_t obs, double value) {
        char wm[32], off[24], b[24], o[24], v[32], ret[24], win[24];
        const char *argv[] = {"FCALL", "chorus_actual", "1", base, wm, off, b, o, v, ret, win};

        snprintf(wm, sizeof(wm), "actuals|0");
        snprintf(off, sizeof(off), "%ld", ++seq);
        snprintf(b, sizeof(b), "%" PRId64, bucket);
        snprintf(o, sizeof(o), "%" PRId64, obs);
        snprintf(v, sizeof(v), "%.17g", value);
        snprintf(ret, sizeof(ret), "%" PRId64, retain);
        snprintf(win, sizeof(win), "%" PRId64, WINDOW);
        send_argv(11, argv);
}

static void prediction(int model, int64_t bucket, int64_t issued, double value) {
        char wm[32], off[24], m[16], b[24], iss[24], v[32], rec[96], ret[24], win[24];
        const char *argv[] = {"FCALL", "chorus_prediction",
                              "1",     base,
                              wm,      off,
                              "batch", "1",
                              "1h",    m,
                              b,       iss,
                              v,       rec,
                              win,     ret,
                              "1"};

        snprintf(wm, sizeof(wm), "predictions|0");
        snprintf(off, sizeof(off), "%ld", ++seq);
        snprintf(m, sizeof(m), "model%d", model);
        snprintf(b, sizeof(b), "%" PRId64, bucket);
        snprintf(iss, sizeof(iss), "%" PRId64, issued);
        snprintf(v, sizeof(v), "%.17g", value);
        snprintf(rec, sizeof(rec), "%s|%s|||-", iss, v);
        snprintf(ret, sizeof(ret), "%" PRId64, RETAIN);
        snprintf(win, sizeof(win), "%" PRId64, WINDOW);
        send_argv(17, argv);
}

/* A deterministic price path and forecasts around it. */
static double price(int64_t k) {
        return 100.0 + 5.0 * sin((double)k * 0.01) + 0.3 * sin((double)k * 1.7);
}

static double forecast(int model, int64_t k) {
        return price(k) * (1.0 + 0.002 * (model + 1) * cos((double)k * 0.37 + model));
}

/* Bucket k: actual observed half-way through it; predictions for bucket k+1
 * issued three quarters of the way through bucket k (after that actual). */
static void send_actual(int64_t k, int64_t res) {
        actual(T0 + k * res, T0 + k * res + res / 2, price(k));
}

static void send_predictions(int64_t k, int64_t res) {
        for (int m = 0; m < n_models; m++)
                prediction(m, T0 + k * res, T0 + k * res - res / 4 + m, forecast(m, k));
}

static double redis_cpu_s(void) {
        redisReply *r = redisCommand(rc, "INFO cpu");
        double user = 0, sys = 0;
        const char *p;

        if (!r || r->type != REDIS_REPLY_STRING)
                die("INFO", r);
        if ((p = strstr(r->str, "used_cpu_user:")))
                user = atof(p + strlen("used_cpu_user:"));
        if ((p = strstr(r->str, "used_cpu_sys:")))
                sys = atof(p + strlen("used_cpu_sys:"));
        freeReplyObject(r);
        return user + sys;
}

static long long memory_usage(const char *key) {
        redisReply *r = redisCommand(rc, "MEMORY USAGE %s SAMPLES 0", key);
        long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;

        freeReplyObject(r);
        return n;
}

static long long key_count(const char *key) {
        redisReply *r = redisCommand(rc, "ZCARD %s", key);
        long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;

        freeReplyObject(r);
        return n;
}

typedef struct phase {
        double wall_us, cpu_us;
        long calls;
} phase_t;

static phase_t timed(void (*body)(int64_t, int64_t, int64_t), int64_t from, int64_t n,
                     int64_t res) {
        phase_t ph;
        long before = seq;
        double c0 = redis_cpu_s(), t0 = now_s();

        body(from, n, res);
        drain();
        ph.wall_us = (now_s() - t0) * 1e6;
        ph.cpu_us = (redis_cpu_s() - c0) * 1e6;
        ph.calls = seq - before;
        ph.wall_us /= (double)ph.calls;
        ph.cpu_us /= (double)ph.calls;
        return ph;
}

static void body_pred(int64_t from, int64_t n, int64_t res) {
        for (int64_t k = from; k < from + n; k++)
                send_predictions(k, res);
}

static void body_pair(int64_t from, int64_t n, int64_t res) {
        for (int64_t k = from; k < from + n; k++) {
                send_actual(k - 1, res);
                send_predictions(k, res);
        }
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
        for (int i = 1; i < argc - 1; i++)
                if (!strcmp(argv[i], name))
                        return argv[i + 1];
        return def;
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "rb");
        long n;
        char *s;

        if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
                return NULL;
        s = malloc((size_t)n + 1);
        if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
                free(s);
                s = NULL;
        }
        if (s)
                s[n] = 0;
        fclose(f);
        return s;
}

int main(int argc, char **argv) {
        const char *lua_path = arg(argc, argv, "--lua", NULL);
        char *points = strdup(arg(argc, argv, "--points", "30,720,43200"));
        long calls = atol(arg(argc, argv, "--calls", "2000"));
        char errstr[512], *lua, *save = NULL;
        redisReply *r;

        pipeline = atoi(arg(argc, argv, "--pipeline", "100"));
        n_models = atoi(arg(argc, argv, "--models", "1"));
        lua = lua_path ? read_file(lua_path) : strdup(chorus_embedded_get("chorus.lua"));
        if (!lua || calls < 1 || pipeline < 1 || n_models < 1) {
                fprintf(stderr, "usage: agg_cost [--points 30,720,43200] [--calls N] "
                                "[--models M] [--pipeline P] [--lua chorus.lua]\n");
                return 2;
        }
        if (chorus_redis_server_start(&srv, errstr, sizeof(errstr))) {
                fprintf(stderr, "agg_cost: %s\n", errstr);
                return 1;
        }
        rc = redisConnect("127.0.0.1", srv.port);
        if (!rc || rc->err)
                die("connect", NULL);
        r = redisCommand(rc, "FUNCTION LOAD REPLACE %s", lua);
        if (!r || r->type == REDIS_REPLY_ERROR)
                die("FUNCTION LOAD", r);
        freeReplyObject(r);

        printf("%-8s %-6s %6s | %9s %9s | %9s %9s | %8s %10s %7s %7s\n", "points", "bucket",
               "models", "pred", "pred", "pair", "pair", "stored", "sc+pub", "bytes/", "aggr.");
        printf("%-8s %-6s %6s | %9s %9s | %9s %9s | %8s %10s %7s %7s\n", "/window", "", "",
               "wall us", "redis us", "wall us", "redis us", "points", "bytes", "point", "bytes");
        for (char *tok = strtok_r(points, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int64_t p = atoll(tok), res = WINDOW / p;
                phase_t pred, pair;
                char key[128];
                long long win_bytes = 0, agg_bytes = 0, n_points;
                const char *suffix[] = {":sc:1h|model0", ":pub:1h|model0"};
                const char *agg_keys[] = {":sa:1h|model0", ":sp:1h|model0", ":aa", ":ap"};

                if (p < 1 || WINDOW % p) {
                        fprintf(stderr, "agg_cost: %s does not divide 30 days\n", tok);
                        return 2;
                }
                freeReplyObject(redisCommand(rc, "FLUSHALL"));
                seq = 0;
                retain = RETAIN;
                /* Preload: a full window of actuals and predictions. */
                for (int64_t k = 0; k <= p; k++) {
                        send_actual(k, res);
                        if (k > 0)
                                send_predictions(k, res);
                }
                drain();
                /* pair: the steady state of a live series, retention
                 * trimming included (one old bucket per actual). */
                pair = timed(body_pair, p + 1, calls, res);
                /* pred: the next buckets' actuals are loaded first (with a
                 * retention long enough not to trim what the window still
                 * needs), then only predictions are timed. */
                retain = 100 * 365 * DAY;
                for (int64_t k = p + calls; k <= p + 2 * calls; k++)
                        send_actual(k, res);
                drain();
                pred = timed(body_pred, p + calls + 1, calls, res);

                /* One (series, horizon, model) window: its scored points and
                 * publish times (both also hold the retention beyond the
                 * window), and the O(1) aggregate keys of this change. */
                for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
                        snprintf(key, sizeof(key), "%s%s", base, suffix[i]);
                        win_bytes += memory_usage(key);
                }
                snprintf(key, sizeof(key), "%s:sc:1h|model0", base);
                n_points = key_count(key);
                for (size_t i = 0; i < sizeof(agg_keys) / sizeof(agg_keys[0]); i++) {
                        snprintf(key, sizeof(key), "%s%s", base, agg_keys[i]);
                        agg_bytes += memory_usage(key);
                }

                printf("%-8" PRId64 " %-6s %6d | %9.1f %9.1f | %9.1f %9.1f | %8lld %10lld %7.0f "
                       "%7lld\n",
                       p,
                       res == DAY       ? "1d"
                       : res == 3600000 ? "1h"
                       : res == 60000   ? "1min"
                                        : "other",
                       n_models, pred.wall_us, pred.cpu_us, pair.wall_us, pair.cpu_us, n_points,
                       win_bytes, n_points ? (double)win_bytes / (double)n_points : 0.0, agg_bytes);
                fflush(stdout);
                fprintf(stderr,
                        "{\"points\": %" PRId64 ", \"models\": %d, \"calls\": %ld, "
                        "\"pred_wall_us\": %.2f, \"pred_redis_cpu_us\": %.2f, "
                        "\"pair_wall_us\": %.2f, \"pair_redis_cpu_us\": %.2f, "
                        "\"window_points_stored\": %lld, \"window_bytes\": %lld, "
                        "\"aggregate_bytes\": %lld}\n",
                        p, n_models, calls, pred.wall_us, pred.cpu_us, pair.wall_us, pair.cpu_us,
                        n_points, win_bytes, agg_bytes);
        }
        if (getenv("AGG_COST_KEEP")) { /* for inspection: leave the server running */
                printf("redis on port %d\n", srv.port);
                return 0;
        }
        redisFree(rc);
        chorus_redis_server_stop(&srv);
        free(points);
        free(lua);
        return 0;
}
