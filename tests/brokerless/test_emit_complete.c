/*
 * Broker-less tests of emit.mode=complete (SPEC §5, src/state/lua/65_emit_complete.lua)
 * against a real redis-server child: the state functions are driven directly
 * (FCALL, forced, so no hold) and their replies read with the worker's own
 * parser (chorus_state_reply_forecasts / chorus_state_parse_forecast).
 *
 *  - a group that becomes complete is emitted once, and its revisions after;
 *  - a group closed by a later prediction of its horizon, or by an actual
 *    (emitted by the first prediction issued at or after that actual), with
 *    emit.min_models on both sides of the threshold;
 *  - the emissions do not depend on whether an actual is processed before or
 *    after the predictions issued before it;
 *  - a re-delivered emitting record re-emits the same bytes, unless its batch
 *    committed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "chorus/embedded.h"
#include "chorus/log.h"
#include "chorus/redis_server.h"
#include "chorus/state.h"

#define HOUR INT64_C(3600000)
#define DAY  (24 * HOUR)
#define T0   INT64_C(1704067200000)
#define D(n) (T0 + (n)*DAY)

static chorus_redis_server_t redis;
static redisContext *rc;

static void setup(void) {
        char errstr[512];
        redisReply *r;

        chorus_log_level = CHORUS_LOG_ERROR;
        cr_assert_eq(chorus_redis_server_start(&redis, errstr, sizeof(errstr)), 0, "%s", errstr);
        rc = redisConnect("127.0.0.1", redis.port);
        cr_assert(rc && !rc->err, "connect: %s", rc ? rc->errstr : "?");
        r = redisCommand(rc, "FUNCTION LOAD REPLACE %s", chorus_embedded_get("chorus.lua"));
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "FUNCTION LOAD: %s", r ? r->str : "?");
        freeReplyObject(r);
}

static void teardown(void) {
        if (rc)
                redisFree(rc);
        chorus_redis_server_stop(&redis);
}

TestSuite(emit_complete, .init = setup, .fini = teardown, .timeout = 120);

/* One series' calls: its base key, the emit argument, the offsets. */
typedef struct run {
        char base[64];
        char emit[64];
        int64_t act_off, pred_off;
        char log[8192]; /* every emission, "<h>/<day>/r<rev>/<models>;" */
        chorus_group_scratch_t scratch;
} run_t;

static void run_init(run_t *run, const char *series, int min_models) {
        memset(run, 0, sizeof(*run));
        snprintf(run->base, sizeof(run->base), "t:{%s}", series);
        snprintf(run->emit, sizeof(run->emit), "%d|fair|good|poor", min_models);
}

static void actual(run_t *run, int64_t observed_at, double value) {
        char b[24], obs[24], val[32], off[24];
        redisReply *r;

        snprintf(b, sizeof(b), "%" PRId64, (observed_at / DAY) * DAY);
        snprintf(obs, sizeof(obs), "%" PRId64, observed_at);
        snprintf(val, sizeof(val), "%.17g", value);
        snprintf(off, sizeof(off), "%" PRId64, ++run->act_off);
        {
                const char *argv[] = {
                    "FCALL", "chorus_actual", "1",          run->base, "a|0", off, b, obs,
                    val,     "8640000000",    "2592000000", "1",       "-"};
                r = redisCommandArgv(rc, 13, argv, NULL);
        }
        cr_assert(r && r->type == REDIS_REPLY_ARRAY, "chorus_actual: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
}

static redisReply *prediction_at(run_t *run, int64_t offset, const char *batch,
                                 const char *committed, const char *h, const char *model,
                                 int64_t bucket, int64_t issued, double value) {
        char b[24], iss[24], val[32], rec[128], off[24];

        snprintf(b, sizeof(b), "%" PRId64, bucket);
        snprintf(iss, sizeof(iss), "%" PRId64, issued);
        snprintf(val, sizeof(val), "%.17g", value);
        snprintf(rec, sizeof(rec), "%s|%s|||%s|-", iss, val, b);
        snprintf(off, sizeof(off), "%" PRId64, offset);
        {
                const char *argv[] = {"FCALL",
                                      "chorus_prediction",
                                      "1",
                                      run->base,
                                      "p|0",
                                      off,
                                      batch,
                                      "1",
                                      h,
                                      model,
                                      b,
                                      iss,
                                      val,
                                      rec,
                                      "2592000000",
                                      "8640000000",
                                      "0",
                                      "1",
                                      committed,
                                      "-",
                                      run->emit};
                return redisCommandArgv(rc, 21, argv, NULL);
        }
}

/* The emissions of a reply, appended to run->log; returns how many. */
static size_t note(run_t *run, const redisReply *r) {
        size_t n = chorus_state_reply_forecasts(r);
        chorus_group_view_t v;

        for (size_t k = 0; k < n; k++) {
                size_t len = strlen(run->log);
                cr_assert_eq(chorus_state_parse_forecast(r, k, "s", "?", -1, &run->scratch, &v),
                             CHORUS_OK, "forecast %zu of the reply", k);
                len += (size_t)snprintf(run->log + len, sizeof(run->log) - len,
                                        "%s/%" PRId64 "/r%" PRId64 "/", v.horizon,
                                        (v.bucket - T0) / DAY, v.revision);
                for (size_t i = 0; i < v.n_models; i++)
                        len += (size_t)snprintf(run->log + len, sizeof(run->log) - len, "%s%s",
                                                i ? "," : "", v.models[i].model);
                snprintf(run->log + len, sizeof(run->log) - len, ";");
        }
        return n;
}

/* Prediction of @p model for day @p target's bucket; returns its emissions. */
static size_t predict(run_t *run, const char *h, const char *model, int target, int64_t issued,
                      double value) {
        redisReply *r =
            prediction_at(run, ++run->pred_off, "b1", "-", h, model, D(target), issued, value);
        size_t n;

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1, "chorus_prediction: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "?");
        n = note(run, r);
        freeReplyObject(r);
        return n;
}

static void history(run_t *run, int days) {
        for (int d = 0; d < days; d++)
                actual(run, D(d) + 21 * HOUR, 100.0 + d);
}

Test(emit_complete, complete_group_emits_once_then_revisions) {
        run_t run;

        run_init(&run, "complete", 1);
        history(&run, 3);
        cr_assert_eq(predict(&run, "1D", "good", 3, D(2) + 22 * HOUR, 103.0), 0);
        cr_assert_eq(predict(&run, "1D", "fair", 3, D(2) + 22 * HOUR, 103.5), 0);
        cr_assert_eq(predict(&run, "1D", "poor", 3, D(2) + 22 * HOUR, 104.0), 1);
        cr_assert_eq(predict(&run, "1D", "fair", 3, D(2) + 23 * HOUR, 103.2), 1);
        cr_assert_str_eq(run.log, "1D/3/r1/fair,good,poor;1D/3/r2/fair,good,poor;");
        chorus_group_scratch_destroy(&run.scratch);
}

Test(emit_complete, closed_by_a_later_prediction) {
        run_t two, three;

        run_init(&two, "byp2", 2);
        run_init(&three, "byp3", 3);
        history(&two, 3);
        history(&three, 3);
        for (run_t *run = &two; run; run = run == &two ? &three : NULL) {
                cr_assert_eq(predict(run, "1D", "good", 3, D(2) + 22 * HOUR, 103.0), 0);
                cr_assert_eq(predict(run, "1D", "fair", 3, D(2) + 22 * HOUR, 103.5), 0);
                /* Another horizon issued after the target time closes nothing. */
                cr_assert_eq(predict(run, "2D", "good", 5, D(3) + 9 * HOUR, 105.0), 0);
                /* Issued at 10:00 on day 3, before day 3's actual: closes day 3. */
                predict(run, "1D", "good", 4, D(3) + 10 * HOUR, 104.0);
        }
        cr_assert_str_eq(two.log, "1D/3/r1/fair,good;");
        cr_assert_str_eq(three.log, "");
        /* Closed with too few: a model arriving later makes it complete. */
        cr_assert_eq(predict(&three, "1D", "poor", 3, D(2) + 23 * HOUR, 103.9), 1);
        cr_assert_str_eq(three.log, "1D/3/r1/fair,good,poor;");
        /* A revision after the emission is emitted. */
        cr_assert_eq(predict(&two, "1D", "poor", 3, D(2) + 23 * HOUR, 103.9), 1);
        cr_assert_str_eq(two.log, "1D/3/r1/fair,good;1D/3/r2/fair,good,poor;");
        chorus_group_scratch_destroy(&two.scratch);
        chorus_group_scratch_destroy(&three.scratch);
}

Test(emit_complete, closed_by_an_actual_whatever_the_order) {
        /* The same records, day 3's actual processed before or after the
         * predictions issued on day 2 (they need only day 2's actual). */
        run_t before, after;

        run_init(&before, "abefore", 2);
        run_init(&after, "aafter", 2);
        history(&before, 3);
        history(&after, 3);
        actual(&before, D(3) + 21 * HOUR, 103.0);
        for (run_t *run = &before; run; run = run == &before ? &after : NULL) {
                predict(run, "1D", "good", 3, D(2) + 22 * HOUR, 103.0);
                predict(run, "1D", "fair", 3, D(2) + 22 * HOUR, 103.5);
                /* Issued before day 3's actual was observed: closes nothing. */
                predict(run, "2D", "good", 5, D(3) + 20 * HOUR, 105.0);
        }
        cr_assert_str_eq(before.log, "");
        cr_assert_str_eq(after.log, "");
        actual(&after, D(3) + 21 * HOUR, 103.0);
        /* The first prediction issued at or after that actual emits the close,
         * here one of another horizon. */
        cr_assert_eq(predict(&before, "2D", "fair", 5, D(3) + 22 * HOUR, 105.5), 1);
        cr_assert_eq(predict(&after, "2D", "fair", 5, D(3) + 22 * HOUR, 105.5), 1);
        cr_assert_str_eq(before.log, "1D/3/r1/fair,good;");
        cr_assert_str_eq(after.log, before.log);
        /* Closed: nothing more until the group changes. */
        cr_assert_eq(predict(&before, "1D", "good", 5, D(4) + 22 * HOUR, 105.0), 0);
        chorus_group_scratch_destroy(&before.scratch);
        chorus_group_scratch_destroy(&after.scratch);
}

Test(emit_complete, below_min_models_at_an_actual_close) {
        run_t run;

        run_init(&run, "amin", 3);
        history(&run, 4);
        predict(&run, "1D", "good", 3, D(2) + 22 * HOUR, 103.0);
        predict(&run, "1D", "fair", 3, D(2) + 22 * HOUR, 103.5);
        actual(&run, D(4) + 21 * HOUR, 104.0);
        cr_assert_eq(predict(&run, "2D", "fair", 6, D(4) + 22 * HOUR, 105.5), 0);
        cr_assert_str_eq(run.log, "");
        chorus_group_scratch_destroy(&run.scratch);
}

Test(emit_complete, reemit_until_committed) {
        run_t run;
        redisReply *r, *again;

        run_init(&run, "snap", 1);
        history(&run, 3);
        predict(&run, "1D", "good", 3, D(2) + 22 * HOUR, 103.0);
        predict(&run, "1D", "fair", 3, D(2) + 22 * HOUR, 103.5);
        r = prediction_at(&run, 10, "b9", "-", "1D", "poor", D(3), D(2) + 22 * HOUR, 104.0);
        cr_assert_eq(chorus_state_reply_forecasts(r), 1);
        cr_assert_str_eq(r->element[0]->str, "applied");
        /* Re-read by another batch: the same emission, re-tagged. */
        again = prediction_at(&run, 10, "b10", "-", "1D", "poor", D(3), D(2) + 22 * HOUR, 104.0);
        cr_assert_str_eq(again->element[0]->str, "reemit");
        cr_assert_eq(again->elements, r->elements);
        cr_assert_eq(again->element[1]->elements, r->element[1]->elements);
        note(&run, r);
        note(&run, again);
        cr_assert_str_eq(run.log, "1D/3/r1/fair,good,poor;1D/3/r1/fair,good,poor;");
        freeReplyObject(again);
        /* Its batch committed: nothing to emit. */
        again =
            prediction_at(&run, 10, "b11", "x,b10", "1D", "poor", D(3), D(2) + 22 * HOUR, 104.0);
        cr_assert_str_eq(again->element[0]->str, "replayed");
        cr_assert_eq(chorus_state_reply_forecasts(again), 0);
        freeReplyObject(again);
        freeReplyObject(r);
        /* A record that emitted nothing left no snapshot. */
        r = prediction_at(&run, 2, "b12", "-", "1D", "fair", D(3), D(2) + 22 * HOUR, 103.5);
        cr_assert_str_eq(r->element[0]->str, "replayed");
        freeReplyObject(r);
        chorus_group_scratch_destroy(&run.scratch);
}
