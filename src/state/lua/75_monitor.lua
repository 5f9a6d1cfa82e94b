-- Monitoring: ensemble scores, day closes and the alert lifecycle (SPEC §4,
-- §6). Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).
--
-- The served forecast's final value is computed in the worker, so it comes
-- back in a second call of the batch (chorus_monitor, one per series), after
-- the forecasts are built and before the transaction commits:
--  * base:ens:<h> keeps every revision of the ensemble forecast per target
--    bucket (score = bucket, member "<bucket>|<issued_at>|<revision>|<value>"):
--    a day close reads the latest revision issued by the end of its day.
--  * base:ew is the ensemble watermark: the newest issued_at whose forecast
--    is recorded. A series' day close waits for min(base:aw, base:ew), not
--    base:pw: a prediction applied by one worker has its forecast recorded a
--    moment later, and a close run in between by the worker of the actuals
--    would miss it.
--  * Day closes (SPEC §1): day D closes once, when that watermark reaches
--    the start of D + 1; it decides from the forecasts issued and the actual
--    versions observed before then. base:mclosed is the last day closed.
--  * Alert state and transitions: 15_alerts.lua. Validation windows are
--    settled and emitted here too (55_validation.lua).
--  * Outputs are exactly once like forecasts: the alerts a call emits are
--    kept in base:osnap:<topic>|<partition> at the offset of the batch's
--    last record of the series (the anchor), tagged with the batch, until
--    chorus_release. A call whose records were read before finds them there:
--    a committed batch's are dropped, the others emitted again.

local MONITOR_MAX_DAYS = 3660 -- days closed per call: a bound, not a limit in practice

local function day_of(t)
    return math.floor(t / DAY_MS)
end

local function actual_as_of(base, b, I)
    local v = version_as_of(base, b, I)
    return v and tonumber(v)
end

-- Ensemble APEs of the targets in [lo, hi) as of I: the latest revision
-- issued at or before I against the actual version observed by I. Buckets
-- in ascending order, so the sums are the same in every run.
local function ensemble_apes(base, h, lo, hi, I)
    local members = redis.call('ZRANGEBYSCORE', base .. ':ens:' .. h, lo, '(' .. hi)
    local best = {}
    local order = {}
    for i = 1, #members do
        local b, iss, rev, v = string.match(members[i], '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
        b, iss, rev = tonumber(b), tonumber(iss), tonumber(rev)
        if iss <= I then
            local cur = best[b]
            if not cur then
                order[#order + 1] = b
            end
            if not cur or iss > cur[1] or (iss == cur[1] and rev > cur[2]) then
                best[b] = {iss, rev, tonumber(v)}
            end
        end
    end
    table.sort(order)
    local n, sum = 0, 0
    for i = 1, #order do
        local b = order[i]
        local a = actual_as_of(base, b, I)
        if a and a ~= 0 then
            n = n + 1
            sum = sum + 100 * math.abs(best[b][3] - a) / math.abs(a)
        end
    end
    return n, sum
end

-- The daily MAPE of day d as recorded at its close, or nil.
local function daily_mape(base, h, d)
    local m = redis.call('ZRANGEBYSCORE', base .. ':dmape:' .. h, d, d)
    if #m == 0 then
        return nil
    end
    local _, n, mape = string.match(m[1], '^([^|]*)|([^|]*)|(.*)$')
    return tonumber(mape), tonumber(n)
end

-- baseline_mape for day d: configured, or the median of the daily MAPEs of
-- days d - auto_from .. d - auto_to, with at least auto_min of them.
local function baseline_for(base, h, d, cfg)
    if cfg.baseline ~= 'auto' then
        return cfg.baseline
    end
    local m = redis.call('ZRANGEBYSCORE', base .. ':dmape:' .. h, d - cfg.auto_from, d - cfg.auto_to)
    if #m < cfg.auto_min then
        return nil
    end
    local v = {}
    for i = 1, #m do
        local _, _, mape = string.match(m[i], '^([^|]*)|([^|]*)|(.*)$')
        v[i] = tonumber(mape)
    end
    table.sort(v)
    local k = #v
    if k % 2 == 1 then
        return v[(k + 1) / 2]
    end
    return (v[k / 2] + v[k / 2 + 1]) / 2
end

-- The configured model lists of the monitor argument: "" or
-- "<horizon>=<model>,<model>;..." with horizon "*" for the list of every
-- horizon without its own. Returns horizon -> sorted models.
local function configured_models(spec)
    local out = {}
    for h, list in string.gmatch(spec or '', '([^=;]+)=([^;]*)') do
        local models = {}
        for m in string.gmatch(list, '[^,]+') do
            models[#models + 1] = m
        end
        table.sort(models)
        out[h] = models
    end
    return out
end

-- DATA_MISSING (6.7) counts of day d: over the buckets of d with an actual
-- as of I, the (model, group) predictions expected as of each bucket's
-- start (the configured list, else the window's publishers then) and how
-- many of them are absent (no prediction issued by I).
local function missing_counts(base, h, d, I, cfg)
    local expected_n, missing_n = 0, 0
    local buckets = redis.call('ZRANGEBYSCORE', base .. ':act', d * DAY_MS, '(' .. ((d + 1) * DAY_MS))
    for i = 1, #buckets do
        local b = parse_act(buckets[i])
        if actual_as_of(base, b, I) then
            local expected = cfg.models[h] or cfg.models['*']
                or window_publishers(base, h, b, cfg.window)
            if #expected > 0 then
                local fields = {}
                for j = 1, #expected do
                    fields[j] = h .. '|' .. expected[j]
                end
                local got = redis.call('HMGET', base .. ':p:' .. b, unpack(fields))
                expected_n = expected_n + #expected
                for j = 1, #expected do
                    if not got[j] or tonumber(split(got[j])[1]) > I then
                        missing_n = missing_n + 1
                    end
                end
            end
        end
    end
    return expected_n, missing_n
end

-- MAPE_DEGRADATION (6.1), PERFORMANCE_DRIFT (6.2) and DATA_MISSING (6.7)
-- at the close of day d.
local function close_day(base, series, h, d, cfg, out)
    local day_end = (d + 1) * DAY_MS -- exclusive: the close sees event times < day_end
    local I = day_end - 1
    local n, sum = ensemble_apes(base, h, d * DAY_MS, day_end, I)
    local baseline = baseline_for(base, h, d, cfg)
    local date = day_string(d)
    if n > 0 then
        redis.call('ZADD', base .. ':dmape:' .. h, d, d .. '|' .. n .. '|' .. fmt(sum / n))
    end

    -- 6.7 DATA_MISSING: judged on days with an expected prediction.
    local expected_n, missing_n = missing_counts(base, h, d, I, cfg)
    if expected_n > 0 then
        local pct = 100 * missing_n / expected_n
        local rec = alert_transition(base, {
            holds = pct > cfg.missing_pct, type = 'DATA_MISSING', severity = 'warning',
            series = series, horizon = h, value = pct, threshold = cfg.missing_pct,
            event_time = I,
            message = string.format('%s %s: %d of %d expected predictions (%.4g %%) absent from the groups of %s that have an actual; threshold %.4g %%',
                series, h, missing_n, expected_n, pct, date, cfg.missing_pct),
            details = {'day', date, 'missing', tostring(missing_n), 'expected',
                       tostring(expected_n), 'missing_pct', fmt(pct),
                       'threshold_pct', fmt(cfg.missing_pct)}})
        if rec then
            out[#out + 1] = rec
        end
    end
    if not baseline then
        return
    end

    -- 6.1: the streak counts consecutive days with scored targets.
    if n > 0 then
        local mape = sum / n
        local level = baseline + cfg.mape_pp
        local skey = base .. ':mstreak:' .. h
        local streak = 0
        if mape > level then
            streak = redis.call('INCR', skey)
        else
            redis.call('SET', skey, 0)
        end
        local rec = alert_transition(base, {
            holds = streak >= cfg.mape_days, type = 'MAPE_DEGRADATION', severity = 'critical',
            series = series, horizon = h, value = mape, threshold = level, event_time = I,
            message = string.format('%s %s: ensemble daily MAPE %.4g %% %s baseline %.4g %% + %.4g pp on %s (%d consecutive day(s) above)',
                series, h, mape, mape > level and 'above' or 'at or below', baseline, cfg.mape_pp,
                date, streak),
            details = {'day', date, 'daily_mape', fmt(mape), 'baseline_mape', fmt(baseline),
                       'threshold', fmt(level), 'days_above', tostring(streak),
                       'days_required', tostring(cfg.mape_days), 'scored_targets', tostring(n)}})
        if rec then
            out[#out + 1] = rec
        end
    end

    -- 6.2: the 7-day rolling MAPE as of the end of d.
    local rn, rsum = ensemble_apes(base, h, (d - cfg.drift_days + 1) * DAY_MS, day_end, I)
    local level = baseline + cfg.drift_pp
    local rolling = rn > 0 and rsum / rn or 0
    local rec = alert_transition(base, {
        holds = rn >= cfg.drift_min and rolling > level, type = 'PERFORMANCE_DRIFT',
        severity = 'warning', series = series, horizon = h, value = rolling, threshold = level,
        event_time = I,
        message = string.format('%s %s: %d-day ensemble MAPE %.4g %% over %d target(s) to %s; threshold baseline %.4g %% + %.4g pp',
            series, h, cfg.drift_days, rolling, rn, date, baseline, cfg.drift_pp),
        details = {'day', date, 'rolling_mape', fmt(rolling), 'baseline_mape', fmt(baseline),
                   'threshold', fmt(level), 'days', tostring(cfg.drift_days),
                   'scored_targets', tostring(rn), 'min_targets', tostring(cfg.drift_min)}})
    if rec then
        out[#out + 1] = rec
    end
end

-- "m=w,m=w" -> {m = w}, and the models in order.
local function parse_weights(text)
    local w, order = {}, {}
    for m, v in string.gmatch(text, '([^=,]+)=([^,]+)') do
        w[m] = tonumber(v)
        order[#order + 1] = m
    end
    return w, order
end

-- WEIGHT_SHIFT (6.9) on a complete, non-fallback forecast issued at I with
-- these weights: against the latest such forecast of (series, h) issued at
-- or before I - days. base:wsh:<h> keeps them (score issued_at, member
-- "<seq>|<weights>", seq zero-padded so that the later of two with the same
-- issued_at sorts last); the older ones than the reference go.
local function weight_shift(base, series, h, I, text, cfg, out)
    local key = base .. ':wsh:' .. h
    local seq = redis.call('INCR', base .. ':wseq')
    redis.call('ZADD', key, I, string.format('%012d', seq) .. '|' .. text)
    local ref = redis.call('ZREVRANGEBYSCORE', key, I - cfg.shift_days * DAY_MS, '-inf',
                           'WITHSCORES', 'LIMIT', 0, 1)
    if #ref == 0 then
        return
    end
    local ref_at = tonumber(ref[2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ref_at)
    local before = parse_weights(string.match(ref[1], '^[^|]*|(.*)$'))
    local after, models = parse_weights(text)
    for m in pairs(before) do
        if after[m] == nil then
            models[#models + 1] = m
        end
    end
    table.sort(models)
    local largest, changes = 0, {}
    for i = 1, #models do
        local m = models[i]
        local d = (after[m] or 0) - (before[m] or 0)
        largest = math.max(largest, math.abs(d))
        changes[#changes + 1] = m .. '=' .. fmt(d)
    end
    local rec = alert_transition(base, {
        holds = largest > cfg.shift_max, type = 'WEIGHT_SHIFT', severity = 'info',
        series = series, horizon = h, value = largest, threshold = cfg.shift_max,
        event_time = I,
        message = string.format('%s %s: the largest weight change since the forecast issued %s is %.4g (threshold %.4g)',
            series, h, day_string(math.floor(ref_at / DAY_MS)), largest, cfg.shift_max),
        details = {'max_change', fmt(largest), 'threshold', fmt(cfg.shift_max),
                   'reference_issued_at', tostring(ref_at), 'changes', table.concat(changes, ','),
                   'weights_before', string.match(ref[1], '^[^|]*|(.*)$'),
                   'weights_after', text}})
    if rec then
        out[#out + 1] = rec
    end
end

-- DATA_STALE (6.7), the series' part: its newest actual and the instant
-- after which it is stale, newest + max(min_ms, factor × the largest gap
-- between consecutive actuals observed in the lookback before the newest).
-- Kept in base:stale ("<newest>|<deadline>") and recomputed when the newest
-- actual moves. The global call judges it on the global watermark.
local function stale_deadline(base, cfg)
    local aw = tonumber(redis.call('GET', base .. ':aw'))
    if not aw then
        return nil
    end
    local cached = redis.call('GET', base .. ':stale')
    if cached then
        local last, deadline = string.match(cached, '^(%-?%d+)|(%-?%d+)$')
        if tonumber(last) == aw then
            return aw, tonumber(deadline)
        end
    end
    -- Winners by bucket; an actual is observed at or after its bucket's start.
    local m = redis.call('ZRANGEBYSCORE', base .. ':act', aw - cfg.stale_lookback - DAY_MS, '+inf')
    local times = {}
    for i = 1, #m do
        local _, o = parse_act(m[i])
        if o >= aw - cfg.stale_lookback and o <= aw then
            times[#times + 1] = o
        end
    end
    table.sort(times)
    local gap = 0
    for i = 2, #times do
        gap = math.max(gap, times[i] - times[i - 1])
    end
    local deadline = aw + math.max(cfg.stale_min, math.floor(cfg.stale_factor * gap))
    redis.call('SET', base .. ':stale', aw .. '|' .. deadline)
    return aw, deadline
end

--
-- chorus_monitor KEYS[1]=base
--   ARGV: series, anchor_field, anchor_offset, batch_id, epoch, committed_batches,
--         ranges ("<field>:<lo>:<hi>;..."), baseline ("auto" or a number),
--         mape_pp, mape_days, drift_pp, drift_days, drift_min, auto_from, auto_to,
--         auto_min, validation (see validation_config), overfitting critical
--         divergence, data_missing pct, configured models (see
--         configured_models), weight_shift max, weight_shift days,
--         stale factor, stale minimum ms, stale lookback ms, retention ms, n,
--         then n × (horizon, bucket, issued_at, revision, value, weights:
--         "m=w,..." of a complete, non-fallback forecast, else "", source of
--         its prediction "<topic>|<partition>|<offset>")
-- `ranges` are the offsets of this batch's records of the series, per input
-- partition (held ones excluded: they were never applied); `anchor` is one
-- of them, where this call's alerts wait for the release.
-- Reply: {'fenced'} or {'ok', output...}; an output is an alert
-- {fingerprint, type, severity, state, series, horizon, model, indicator,
-- value, threshold, event_time, message, key, value, ...} (empty strings for
-- absent parts) or a validation window {'window', series, horizon, profile,
-- window_id, start, end, val_rmse, test_rmse, equal_test_rmse, divergence
-- (empty: null), test_points, is_overfitting (1/0), model, weight, ...}.
-- The last element is {'stale', newest actual, deadline} once the series
-- has an actual: not an output, the series' part of DATA_STALE.
--
local function monitor(keys, args)
    local base = keys[1]
    local series, anchor_field, anchor_offset = args[1], args[2], tonumber(args[3])
    local batch_id, epoch = args[4], tonumber(args[5])
    local cfg = {baseline = args[8] == 'auto' and 'auto' or tonumber(args[8]),
                 mape_pp = tonumber(args[9]), mape_days = tonumber(args[10]),
                 drift_pp = tonumber(args[11]), drift_days = tonumber(args[12]),
                 drift_min = tonumber(args[13]), auto_from = tonumber(args[14]),
                 auto_to = tonumber(args[15]), auto_min = tonumber(args[16])}
    local v = validation_config(args[17])
    local critical = tonumber(args[18])
    cfg.missing_pct = tonumber(args[19])
    cfg.models = configured_models(args[20])
    cfg.window = v and v.W or 0
    cfg.shift_max = tonumber(args[21])
    cfg.shift_days = tonumber(args[22])
    cfg.stale_factor = tonumber(args[23])
    cfg.stale_min = tonumber(args[24])
    cfg.stale_lookback = tonumber(args[25])
    local retention = tonumber(args[26])
    local n = tonumber(args[27])

    -- Fencing, as in admit(), without moving any watermark.
    local seen = tonumber(redis.call('HGET', base .. ':wm', 'e|' .. anchor_field))
    if seen and epoch < seen then
        return {'fenced'}
    end

    local out = {'ok'}
    -- Outputs of earlier attempts at these records. Every range's partition
    -- is judged by the anchor's committed batches, as before.
    snapshots_again(base, (string.gsub(args[7], '[^;]+', function(r)
        return r .. ':' .. args[6]
    end)), batch_id, out)

    -- The served forecasts (and WEIGHT_SHIFT on each, in the order served),
    -- then the ensemble watermark.
    local new = {}
    local judged, newest_judged = {}, {}
    local ew = tonumber(redis.call('GET', base .. ':ew'))
    for i = 0, n - 1 do
        local at = 28 + 7 * i
        local h, bucket, issued, rev, value = args[at], args[at + 1], args[at + 2],
            args[at + 3], args[at + 4]
        redis.call('ZADD', base .. ':ens:' .. h, bucket,
                   bucket .. '|' .. issued .. '|' .. rev .. '|' .. value)
        redis.call('SADD', base .. ':ensh', h)
        -- WEIGHT_SHIFT once per forecast: a call over records read again
        -- (after an abort or a crash) serves their forecasts again; their
        -- alerts come from the snapshots, and judging them again would see
        -- the reference set already moved on.
        local field, offset = string.match(args[at + 6], '^(.*)|(%d+)$')
        offset = tonumber(offset)
        if judged[field] == nil then
            judged[field] = tonumber(redis.call('HGET', base .. ':wm', 'w|' .. field)) or -1
        end
        if args[at + 5] ~= '' and offset > judged[field] then
            weight_shift(base, series, h, tonumber(issued), args[at + 5], cfg, new)
        end
        if offset > (newest_judged[field] or -1) then
            newest_judged[field] = offset
        end
        if not ew or tonumber(issued) > ew then
            ew = tonumber(issued)
        end
    end
    if n > 0 then
        redis.call('SET', base .. ':ew', ew)
    end
    for field, offset in pairs(newest_judged) do
        if offset > judged[field] then
            redis.call('HSET', base .. ':wm', 'w|' .. field, offset)
        end
    end

    -- Day closes on min(actuals' watermark, ensemble watermark).
    local aw = tonumber(redis.call('GET', base .. ':aw'))
    if aw and ew then
        local upto = day_of(math.min(aw, ew)) - 1 -- the last day whose end has passed
        local last = tonumber(redis.call('GET', base .. ':mclosed'))
        local horizons = redis.call('SMEMBERS', base .. ':ensh')
        table.sort(horizons)
        if not last then
            -- The first day with a target: nothing before it has anything to close.
            last = upto
            for i = 1, #horizons do
                local first = redis.call('ZRANGE', base .. ':ens:' .. horizons[i], 0, 0,
                                         'WITHSCORES')
                if #first > 0 then
                    last = math.min(last, day_of(tonumber(first[2])) - 1)
                end
            end
        end
        if upto > last then
            local from = math.max(last + 1, upto - MONITOR_MAX_DAYS + 1)
            for d = from, upto do
                for i = 1, #horizons do
                    close_day(base, series, horizons[i], d, cfg, new)
                end
            end
            redis.call('SET', base .. ':mclosed', upto)
        end
    end
    if v then
        validation_settle(base, watermarks(base), v)
        validation_emit(base, series, v, critical, new)
    end
    if #new > 0 then
        local key = base .. ':osnap:' .. anchor_field
        redis.call('ZADD', key, anchor_offset,
                   anchor_offset .. '|' .. batch_id .. '|' .. cmsgpack.pack(new))
        for i = 1, #new do
            out[#out + 1] = new[i]
        end
    end
    -- The trim the series' calls held back for the closes that just ran
    -- (50_retention.lua), so that the state left does not depend on where
    -- the batches ended.
    if v then
        trim(base, retention, v.W, watermarks(base), v)
    end
    -- The lookback stops short of the retention: older actuals may be
    -- trimmed already or not, depending on where batches ended.
    cfg.stale_lookback = math.min(cfg.stale_lookback, retention - DAY_MS)
    local last, deadline = stale_deadline(base, cfg)
    if last then
        out[#out + 1] = {'stale', tostring(last), tostring(deadline)}
    end
    return out
end
