-- The global watermark (SPEC §1) and the rules evaluated on it:
-- EXTREME_PREDICTIONS (§6.3) and ALERT_STORM (§6.11). Part of the chorus
-- library: src/state/lua/*.lua are concatenated in name order at build
-- (cmake/assemble_lua.cmake).
--
-- Every key is under KEYS[1] = <prefix>:{__global__} (one hash slot; "__"
-- names are reserved, so no series has that tag). One chorus_global call
-- per batch, after the series' calls, carries what the batch applied:
--  * per input partition the worker owns: its epoch and whether it is
--    consumed to its end (nothing held from it, position at the high
--    watermark); and the partition count of every input topic;
--  * per stream (input partition, series) touched: the newest event time
--    applied (observed_at of actuals, issued_at of predictions);
--  * the forecasts served, with whether |z| > z_max;
--  * the critical alerts that started firing (escalations included).
-- A stream's watermark is kept in base:pz:<partition> (score), and a
-- partition's watermark is its oldest stream's, or the newest event time
-- seen anywhere (base:newest) when it is consumed to its end. The global
-- watermark base:gw is the oldest partition's, and unknown while any
-- partition of an input topic has not reported: it only moves forward.
-- Because a batch's stream updates and the forecasts and alerts they caused
-- arrive in the same call, everything with an event time before the
-- watermark is recorded when the watermark passes it, whichever worker
-- applied it, so the rules decide the same with 1 worker or N.
--
-- Outputs are exactly once like the series' alerts: kept in
-- base:osnap:<partition> at the batch's anchor record until chorus_release,
-- found again by a later call over the same records.

-- The global watermark from the partitions' state, or nil while unknown.
local function global_watermark(base)
    local totals = redis.call('HGETALL', base .. ':parts')
    if #totals == 0 then
        return nil
    end
    local newest = tonumber(redis.call('GET', base .. ':newest'))
    local states = redis.call('HGETALL', base .. ':pst')
    local at_end, held = {}, {}
    for i = 1, #states, 2 do
        local _, e, h = string.match(states[i + 1], '^(%d+)|(%d)|?(%-?%d*)$')
        at_end[states[i]] = e == '1'
        held[states[i]] = tonumber(h)
    end
    local g
    for i = 1, #totals, 2 do
        for p = 0, tonumber(totals[i + 1]) - 1 do
            local field = totals[i] .. '|' .. p
            local wm
            if at_end[field] then
                wm = newest
            else
                local lo = redis.call('ZRANGE', base .. ':pz:' .. field, 0, 0, 'WITHSCORES')
                wm = lo[2] and tonumber(lo[2])
                -- Records read but held are not applied: they hold it back.
                if held[field] and (not wm or held[field] < wm) then
                    wm = held[field]
                end
            end
            if not wm then
                return nil -- a partition not reported yet (or nothing seen): unknown
            end
            if not g or wm < g then
                g = wm
            end
        end
    end
    return g
end

-- EXTREME_PREDICTIONS for the days whose end the watermark passed.
local function close_extreme_days(base, G, cfg, out, crit)
    local due = redis.call('ZRANGEBYSCORE', base .. ':xpdays', '-inf', '(' .. (math.floor(G / DAY_MS)))
    for i = 1, #due do
        local h, d = string.match(due[i], '^(.*)|(%-?%d+)$')
        d = tonumber(d)
        local key = base .. ':xp:' .. h .. '|' .. d
        local groups = redis.call('HVALS', key)
        local n, extreme = #groups, 0
        for j = 1, n do
            if string.sub(groups[j], -1) == '1' then
                extreme = extreme + 1
            end
        end
        local pct = n > 0 and 100 * extreme / n or 0
        local I = (d + 1) * DAY_MS - 1
        local date = day_string(d)
        local rec = alert_transition(base, {
            holds = n >= cfg.xp_min and pct > cfg.xp_pct, type = 'EXTREME_PREDICTIONS',
            severity = 'critical', horizon = h, value = pct, threshold = cfg.xp_pct,
            event_time = I,
            message = string.format('%s: %d of %d forecasts issued on %s (%.4g %%) had |z| above %.4g; threshold %.4g %% of at least %d',
                h, extreme, n, date, pct, cfg.z_max, cfg.xp_pct, cfg.xp_min),
            details = {'day', date, 'extreme', tostring(extreme), 'forecasts', tostring(n),
                       'extreme_pct', fmt(pct), 'threshold_pct', fmt(cfg.xp_pct),
                       'min_forecasts', tostring(cfg.xp_min), 'z_max', fmt(cfg.z_max)}})
        if rec then
            out[#out + 1] = rec
            if rec[4] == 'firing' then
                crit[#crit + 1] = {rec[1], I}
            end
        end
        redis.call('DEL', key)
        redis.call('ZREM', base .. ':xpdays', due[i])
    end
end

-- ALERT_STORM at every instant in [from, G) where a critical alert started
-- firing or one left the trailing window, in time order.
local function storm_instants(base, from, G, cfg, out)
    local W = cfg.storm_window
    local starts = redis.call('ZRANGEBYSCORE', base .. ':crit', from, '(' .. G)
    local leaving = redis.call('ZRANGEBYSCORE', base .. ':crit', from - W, '(' .. (G - W))
    local instants, seen = {}, {}
    for i = 1, #starts do
        local t = tonumber(string.match(starts[i], '^(%-?%d+)|'))
        if not seen[t] then
            seen[t] = true
            instants[#instants + 1] = t
        end
    end
    for i = 1, #leaving do
        local t = tonumber(string.match(leaving[i], '^(%-?%d+)|')) + W
        if not seen[t] then
            seen[t] = true
            instants[#instants + 1] = t
        end
    end
    table.sort(instants)
    for i = 1, #instants do
        local t = instants[i]
        local inside = redis.call('ZRANGEBYSCORE', base .. ':crit', '(' .. (t - W), t)
        local names, series = {}, {}
        for j = 1, #inside do
            local fp = string.match(inside[j], '^[^|]*|(.*)$')
            names[#names + 1] = fp
            local s = string.match(fp, '^[^|]*|([^|]*)|')
            if s and s ~= '' and not series[s] then
                series[s] = true
                series[#series + 1] = s
            end
        end
        local rec = alert_transition(base, {
            holds = #inside > cfg.storm_count, type = 'ALERT_STORM', severity = 'critical',
            value = #inside, threshold = cfg.storm_count, event_time = t,
            message = string.format('%d critical alert(s) started firing in the hour to %s; threshold %d',
                #inside, day_string(math.floor(t / DAY_MS)), cfg.storm_count),
            details = {'count', tostring(#inside), 'threshold', tostring(cfg.storm_count),
                       'window_ms', tostring(W), 'series', table.concat(series, ','),
                       'alerts', table.concat(names, ',')}})
        if rec then
            out[#out + 1] = rec
        end
    end
end

local HOUR_MS = 3600000

-- DATA_STALE (6.7) on the global watermark: a series whose deadline (its
-- newest actual plus the allowed gap, from chorus_monitor) the watermark
-- has passed is stale as of the instant after the deadline. It is judged
-- once; a newer actual (above) resolves it and sets a new deadline. While
-- the series' actuals stream is behind the deadline it holds the watermark
-- back itself, so this fires once its partition is consumed to its end: an
-- idle stream, or the end of a replay.
local function stale_series(base, G, out)
    local due = redis.call('ZRANGEBYSCORE', base .. ':stale', '-inf', '(' .. G, 'WITHSCORES')
    for i = 1, #due, 2 do
        local series, deadline = due[i], tonumber(due[i + 1])
        local last = tonumber(redis.call('HGET', base .. ':stalelast', series))
        local at = deadline + 1
        local rec = alert_transition(base, {
            holds = true, type = 'DATA_STALE', severity = 'warning', series = series,
            value = (at - last) / HOUR_MS, threshold = (deadline - last) / HOUR_MS,
            event_time = at,
            message = string.format('%s: no actual since %s, more than %.4g h', series,
                day_string(math.floor(last / DAY_MS)), (deadline - last) / HOUR_MS),
            details = {'newest_actual', tostring(last), 'deadline', tostring(deadline),
                       'threshold_hours', fmt((deadline - last) / HOUR_MS)}})
        if rec then
            out[#out + 1] = rec
        end
        redis.call('ZREM', base .. ':stale', series)
    end
end

--
-- chorus_global KEYS[1]=<prefix>:{__global__}
--   ARGV: batch_id, ranges ("<field>:<lo>:<hi>:<committed batches or ->;..."),
--         anchor_field, anchor_offset, z_max, extreme pct, extreme min,
--         storm count, storm window ms, wall clock ms for DATA_STALE or "",
--         then counted lists: n, n × (topic, partitions);
--         n, n × (field, epoch, at_end 0/1, oldest held event time or "");
--         n, n × (field, series, event_time);
--         n, n × (horizon, series, bucket, issued_at, revision, extreme 0/1);
--         n, n × (fingerprint, event_time) of critical alerts started;
--         n, n × (series, newest actual, stale deadline).
-- Reply: {'ok', alert...} (alerts as chorus_monitor's).
--
local function global_call(keys, args)
    local base = keys[1]
    local batch_id, ranges, anchor_field, anchor_offset = args[1], args[2], args[3], args[4]
    local cfg = {z_max = tonumber(args[5]), xp_pct = tonumber(args[6]), xp_min = tonumber(args[7]),
                 storm_count = tonumber(args[8]), storm_window = tonumber(args[9]),
                 wall = tonumber(args[10])}
    local at = 11
    local function take(width)
        local n = tonumber(args[at])
        local first = at + 1
        at = at + 1 + width * n
        return n, first
    end

    local out = {'ok'}
    snapshots_again(base, ranges, batch_id, out)

    local n, i0 = take(2)
    for i = 0, n - 1 do
        redis.call('HSET', base .. ':parts', args[i0 + 2 * i], args[i0 + 2 * i + 1])
    end
    n, i0 = take(4)
    for i = 0, n - 1 do
        local field, epoch = args[i0 + 4 * i], tonumber(args[i0 + 4 * i + 1])
        local cur = redis.call('HGET', base .. ':pst', field)
        local seen = cur and tonumber(string.match(cur, '^(%d+)|'))
        if not seen or epoch >= seen then -- a zombie's older epoch changes nothing
            redis.call('HSET', base .. ':pst', field,
                       epoch .. '|' .. args[i0 + 4 * i + 2] .. '|' .. args[i0 + 4 * i + 3])
        end
    end
    local newest = tonumber(redis.call('GET', base .. ':newest'))
    n, i0 = take(3)
    for i = 0, n - 1 do
        local t = tonumber(args[i0 + 3 * i + 2])
        redis.call('ZADD', base .. ':pz:' .. args[i0 + 3 * i], 'GT', t, args[i0 + 3 * i + 1])
        if not newest or t > newest then
            newest = t
        end
    end
    if newest then
        redis.call('SET', base .. ':newest', newest)
    end

    local G_old = tonumber(redis.call('GET', base .. ':gw'))
    n, i0 = take(6)
    for i = 0, n - 1 do
        local h, series, bucket = args[i0 + 6 * i], args[i0 + 6 * i + 1], args[i0 + 6 * i + 2]
        local issued, rev = tonumber(args[i0 + 6 * i + 3]), tonumber(args[i0 + 6 * i + 4])
        local d = math.floor(issued / DAY_MS)
        -- A forecast of a day already closed is late: it changes nothing.
        if not G_old or G_old < (d + 1) * DAY_MS then
            local key = base .. ':xp:' .. h .. '|' .. d
            local field = series .. '|' .. bucket
            local cur = redis.call('HGET', key, field)
            local ci, cr = 0, 0
            if cur then
                ci, cr = string.match(cur, '^(%-?%d+)|(%d+)|')
                ci, cr = tonumber(ci), tonumber(cr)
            end
            if not cur or issued > ci or (issued == ci and rev > cr) then
                redis.call('HSET', key, field, issued .. '|' .. rev .. '|' .. args[i0 + 6 * i + 5])
                redis.call('ZADD', base .. ':xpdays', d, h .. '|' .. d)
            end
        end
    end
    n, i0 = take(2)
    for i = 0, n - 1 do
        local t = args[i0 + 2 * i + 1]
        redis.call('ZADD', base .. ':crit', t, t .. '|' .. args[i0 + 2 * i])
    end

    -- DATA_STALE: a newer actual moves the series' deadline and ends a
    -- staleness that was judged.
    local new = {}
    n, i0 = take(3)
    for i = 0, n - 1 do
        local series = args[i0 + 3 * i]
        local last, deadline = tonumber(args[i0 + 3 * i + 1]), tonumber(args[i0 + 3 * i + 2])
        local cur = tonumber(redis.call('HGET', base .. ':stalelast', series))
        if not cur or last > cur then
            redis.call('HSET', base .. ':stalelast', series, last)
            redis.call('ZADD', base .. ':stale', deadline, series)
            if cur then
                local rec = alert_transition(base, {
                    holds = false, type = 'DATA_STALE', severity = 'warning', series = series,
                    value = (last - cur) / HOUR_MS, threshold = (deadline - last) / HOUR_MS,
                    event_time = last,
                    message = string.format('%s: actuals again after %.4g h without one', series,
                        (last - cur) / HOUR_MS),
                    details = {'previous_actual', tostring(cur), 'newest_actual', tostring(last),
                               'hours_without', fmt((last - cur) / HOUR_MS)}})
                if rec then
                    new[#new + 1] = rec
                end
            end
        end
    end

    -- Without an anchor record (a batch with nothing applied) outputs could
    -- not be kept for a retry: evaluate in a later call.
    local G = anchor_field ~= '' and global_watermark(base)
    if G and (not G_old or G > G_old) then
        local crit = {}
        close_extreme_days(base, G, cfg, new, crit)
        if not cfg.wall then
            stale_series(base, G, new)
        end
        for i = 1, #crit do
            redis.call('ZADD', base .. ':crit', crit[i][2], crit[i][2] .. '|' .. crit[i][1])
        end
        storm_instants(base, G_old or -math.huge, G, cfg, new)
        redis.call('SET', base .. ':gw', G)
        redis.call('ZREMRANGEBYSCORE', base .. ':crit', '-inf', '(' .. (G - 2 * cfg.storm_window))
    end
    if cfg.wall and anchor_field ~= '' then
        stale_series(base, cfg.wall, new) -- live: against the wall clock
    end
    if #new > 0 and anchor_field ~= '' then
        local key = base .. ':osnap:' .. anchor_field
        redis.call('ZADD', key, anchor_offset,
                   anchor_offset .. '|' .. batch_id .. '|' .. cmsgpack.pack(new))
        for i = 1, #new do
            out[#out + 1] = new[i]
        end
    end
    return out
end
