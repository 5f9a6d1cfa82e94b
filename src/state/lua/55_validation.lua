-- Walk-forward validation windows (SPEC §6.8) and the overfitting verdict
-- behind the forecasts' fallback (§5.1) and the OVERFITTING alert (§6.4).
-- Part of the chorus library: src/state/lua/*.lua are concatenated in name
-- order at build (cmake/assemble_lua.cmake).
--
-- Event time is cut into windows of L ms aligned to the epoch; window k is
-- [k·L, (k+1)·L). Three steps, each in the call that first can take it:
--  * Close. chorus_actual notes in base:vclose (score k, member "k|C") the
--    instant C at which the series' actual watermark passed the end of k:
--    the observed_at of that actual (§6.8 "closed as of that actual's
--    observed_at"). The actuals' stream is in one partition, in order, so C
--    is the same in every run.
--  * Settle. Once the series' prediction watermark has reached C too, every
--    record with event time before C is applied, and the verdict of window
--    k is a function of what is stored: it is computed once per horizon
--    and kept in base:vwin:<h> (score k). Whichever call gets there first
--    does it (an actual, a prediction before its forecast, the monitor), so
--    a forecast issued at I always finds the verdicts of the windows closed
--    at or before I, on every worker. base:vsettled is the last k settled.
--  * Emit. chorus_monitor turns settled windows into ValidationWindow
--    records and OVERFITTING transitions, exactly once through its output
--    snapshots; base:vemitted is the last k emitted.
--
-- The verdict (§6.8): w_k are the §5.1 weights as of the window's start S,
-- over the models warm then, before any override; val_rmse is the RMSE of
-- Σ w·e over the targets in [S − window, S), test_rmse over [S, S + L),
-- equal_test_rmse that of the plain mean of the same models' errors over
-- the same targets (renormalised over the models present at each target).
-- Errors use each bucket's actual as of C and the predictions issued at or
-- before C.

local VALIDATION_KEEP = 64     -- windows kept per series (closes and verdicts)
local VALIDATION_MAX_NEW = 400 -- windows closed by one actual (a gap in the data)

-- The validation argument: "-" (off) or
-- "L,window,method,min_samples,min_test_points,divergence_max" (L and the
-- scoring window in ms; the weights' method and warm-up; the verdict's).
local function validation_config(s)
    if not s or s == '-' then
        return nil
    end
    local L, W, method, min_samples, min_points, div =
        string.match(s, '^(%d+),(%d+),([%a_]+),(%d+),(%d+),([^,]+)$')
    if not L then
        return nil
    end
    return {L = tonumber(L), W = tonumber(W), method = method, min_samples = tonumber(min_samples),
            min_points = tonumber(min_points), div_max = tonumber(div)}
end

-- Called by chorus_actual when the actual watermark moves from old to new.
local function validation_note_close(base, old, new, v)
    if not v or not old then
        return
    end
    local first, last = math.floor(old / v.L), math.floor(new / v.L) - 1
    if last < first then
        return
    end
    last = math.min(last, first + VALIDATION_MAX_NEW - 1)
    for k = first, last do
        redis.call('ZADD', base .. ':vclose', k, k .. '|' .. new)
    end
end

local function parse_close(m)
    local k, C = string.match(m, '^([^|]*)|(.*)$')
    return tonumber(k), tonumber(C)
end

-- The horizons of the series, sorted, and the models of each (sorted).
local function horizon_models(base)
    local hms = redis.call('SMEMBERS', base .. ':hms')
    local by, order = {}, {}
    for i = 1, #hms do
        local h, m = string.match(hms[i], '^([^|]*)|(.*)$')
        if not by[h] then
            by[h] = {}
            order[#order + 1] = h
        end
        by[h][#by[h] + 1] = m
    end
    table.sort(order)
    for i = 1, #order do
        table.sort(by[order[i]])
    end
    return order, by
end

-- The §5.1 data-driven weights as of S over the models warm then, before
-- any override: {model, weight, ...} pairs in model order, or {} when no
-- model is warm. The statistics are those a forecast issued at S sees.
local function frozen_weights(base, h, models, S, W, v)
    local shadow = shadowed(base, S, W) or false
    local used, raw, sum = {}, {}, 0
    for i = 1, #models do
        local agg = sagg_scan(base, h .. '|' .. models[i], S, W, shadow)
        local n, w
        if v.method == 'inv_mse' then
            n = agg.n_se
        else
            n = agg.n_ape
        end
        if v.method == 'equal' then
            -- No statistic to warm up; a model counts once it has a score.
            if agg.n_se > 0 then
                w = 1
            end
        elseif n >= v.min_samples then
            if v.method == 'inv_mse' then
                local mse = agg.big_se > 0 and math.huge or xround(agg.se) / agg.n_se
                w = 1 / math.max(mse, 1e-12)
            else
                local mape = agg.big_ape > 0 and math.huge or xround(agg.ape) / agg.n_ape
                w = 1 / math.max(mape, 0.1)
                if v.method ~= 'inv_mape' then
                    w = math.exp(w)
                end
            end
        end
        if w then
            used[#used + 1] = models[i]
            raw[#raw + 1] = w
            sum = sum + w
        end
    end
    local out = {}
    for i = 1, #used do
        out[#out + 1] = used[i]
        out[#out + 1] = raw[i] / sum
    end
    return out
end

-- One window's verdict for horizon h: a table kept with cmsgpack (numbers
-- stay doubles).
local function window_verdict(base, h, models, k, C, v)
    local W = v.W
    local S, E = k * v.L, (k + 1) * v.L
    local weights = frozen_weights(base, h, models, S, W, v)
    local r = {emit = false, over = false, k = k, S = S, E = E, C = C, weights = weights}
    if #weights == 0 then
        return r
    end
    local fields = {}
    for i = 1, #weights, 2 do
        fields[#fields + 1] = h .. '|' .. weights[i]
    end
    local n_val, s_val, n_test, s_test, s_eq = 0, 0, 0, 0, 0
    local buckets = redis.call('ZRANGEBYSCORE', base .. ':buckets', S - W, '(' .. E)
    for i = 1, #buckets do
        local b = tonumber(buckets[i])
        local a = version_as_of(base, b, C)
        if a then
            a = tonumber(a)
            local preds = redis.call('HMGET', base .. ':p:' .. b, unpack(fields))
            local wsum, combo, n, mean = 0, 0, 0, 0
            for j = 1, #fields do
                local p = preds[j]
                if p then
                    local f = split(p)
                    if tonumber(f[1]) <= C then
                        local e = tonumber(f[2]) - a
                        local w = weights[2 * j]
                        wsum = wsum + w
                        combo = combo + w * e
                        n = n + 1
                        mean = mean + e
                    end
                end
            end
            if n > 0 and wsum > 0 then
                combo = combo / wsum
                if b < S then
                    n_val, s_val = n_val + 1, s_val + combo * combo
                else
                    mean = mean / n
                    n_test, s_test = n_test + 1, s_test + combo * combo
                    s_eq = s_eq + mean * mean
                end
            end
        end
    end
    if n_test == 0 then
        return r
    end
    r.emit = true
    r.val = n_val > 0 and math.sqrt(s_val / n_val) or 0
    r.test = math.sqrt(s_test / n_test)
    r.eq = math.sqrt(s_eq / n_test)
    r.points = n_test
    if r.val > 0 then
        r.div = (r.test - r.val) / r.val
    end
    r.over = r.div ~= nil and r.div > v.div_max and r.test > r.eq and n_test >= v.min_points
    return r
end

-- Settles every closed window whose C the prediction watermark has reached
-- (C is an actual watermark, so C <= aw already). `wm` as watermarks().
local function validation_settle(base, wm, v)
    if not v or not wm.aw or not wm.pw then
        return
    end
    local done = redis.call('GET', base .. ':vsettled')
    local due = redis.call('ZRANGEBYSCORE', base .. ':vclose', done and '(' .. done or '-inf',
                           '+inf')
    if #due == 0 then
        return
    end
    local horizons, models
    local last
    for i = 1, #due do
        local k, C = parse_close(due[i])
        if C > wm.pw then
            break
        end
        if not horizons then
            horizons, models = horizon_models(base)
        end
        for j = 1, #horizons do
            local h = horizons[j]
            local r = window_verdict(base, h, models[h], k, C, v)
            local key = base .. ':vwin:' .. h
            redis.call('ZREMRANGEBYSCORE', key, k, k)
            redis.call('ZADD', key, k, k .. '|' .. cmsgpack.pack(r))
            redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (k - VALIDATION_KEEP))
        end
        last = k
    end
    if last then
        redis.call('SET', base .. ':vsettled', last)
        redis.call('ZREMRANGEBYSCORE', base .. ':vclose', '-inf', '(' .. (last - VALIDATION_KEEP))
    end
end

-- The verdict of horizon h's window k as stored, or nil.
local function window_stored(base, h, k)
    local got = redis.call('ZRANGEBYSCORE', base .. ':vwin:' .. h, k, k)
    if #got == 0 then
        return nil
    end
    local _, packed = string.match(got[1], '^([^|]*)|(.*)$')
    return cmsgpack.unpack(packed)
end

-- Does the latest window of (series, h) closed at or before I hold
-- is_overfitting? (The forecasts' fallback, §5.1; settled before asked.)
local function overfitting_as_of(base, h, I, v)
    if not v then
        return false
    end
    -- C grows with k: the window wanted is almost always one of the last two.
    local top = redis.call('ZREVRANGE', base .. ':vclose', 0, 1)
    local last_k, last_C = parse_close(top[#top] or '|')
    if last_C and last_C > I then
        top = redis.call('ZREVRANGE', base .. ':vclose', 0, -1)
    end
    for i = 1, #top do
        local k, C = parse_close(top[i])
        if C <= I then
            local r = window_stored(base, h, k)
            return r ~= nil and r.over
        end
    end
    return false
end

local function weights_text(weights)
    local parts = {}
    for i = 1, #weights, 2 do
        parts[#parts + 1] = weights[i] .. '=' .. fmt(weights[i + 1])
    end
    return table.concat(parts, ',')
end

-- The ValidationWindow records and OVERFITTING transitions (§6.4) of the
-- windows settled since the last emission, appended to `out` in window,
-- then horizon order. The alert is judged on each closed window in turn:
-- it fires on an overfitting one, changes severity with the divergence,
-- and resolves on the first window that is not overfitting (or not
-- emitted: nothing to judge).
local function validation_emit(base, series, v, critical, out)
    if not v then
        return
    end
    local got = redis.call('MGET', base .. ':vsettled', base .. ':vemitted')
    local settled, emitted = tonumber(got[1]), tonumber(got[2])
    if not settled or (emitted and emitted >= settled) then
        return
    end
    local due = redis.call('ZRANGEBYSCORE', base .. ':vclose', emitted and '(' .. emitted or '-inf',
                           settled)
    local horizons = horizon_models(base)
    for i = 1, #due do
        local k = parse_close(due[i])
        for j = 1, #horizons do
            local h = horizons[j]
            local r = window_stored(base, h, k)
            if r then
                if r.emit then
                    local rec = {'window', series, h, 'baseline', tostring(k), tostring(r.S),
                                 tostring(r.E), fmt(r.val), fmt(r.test), fmt(r.eq),
                                 r.div and fmt(r.div) or '', tostring(r.points),
                                 r.over and '1' or '0'}
                    for m = 1, #r.weights, 2 do
                        rec[#rec + 1] = r.weights[m]
                        rec[#rec + 1] = fmt(r.weights[m + 1])
                    end
                    out[#out + 1] = rec
                end
                local div = r.div or 0
                local severe = div > critical
                local n = #r.weights / 2
                local equal = {}
                for m = 1, #r.weights, 2 do
                    equal[#equal + 1] = r.weights[m]
                    equal[#equal + 1] = 1 / n
                end
                local alert = alert_transition(base, {
                    holds = r.over, type = 'OVERFITTING',
                    severity = severe and 'critical' or 'warning', series = series, horizon = h,
                    value = div, threshold = severe and critical or v.div_max, event_time = r.C,
                    message = string.format('%s %s: validation window %s..%s %s: divergence %.4g, test RMSE %.6g against in-sample %.6g and equal weights %.6g over %d target(s)',
                        series, h, day_string(math.floor(r.S / DAY_MS)),
                        day_string(math.floor((r.E - 1) / DAY_MS)),
                        r.over and 'is overfitting, weights revert to equal' or 'is not overfitting',
                        div, r.test or 0, r.val or 0, r.eq or 0, r.points or 0),
                    details = {'window_id', tostring(k), 'window_start', tostring(r.S),
                               'window_end', tostring(r.E), 'val_rmse', fmt(r.val or 0),
                               'test_rmse', fmt(r.test or 0), 'equal_test_rmse', fmt(r.eq or 0),
                               'divergence', r.div and fmt(r.div) or '',
                               'divergence_threshold', fmt(v.div_max),
                               'critical_divergence', fmt(critical),
                               'test_points', tostring(r.points or 0),
                               'min_test_points', tostring(v.min_points),
                               'weights_before', weights_text(r.weights),
                               'weights_after', weights_text(equal)}})
                if alert then
                    out[#out + 1] = alert
                end
            end
        end
    end
    redis.call('SET', base .. ':vemitted', settled)
end
