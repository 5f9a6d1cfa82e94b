-- Publishers in a window, the series watermarks, retention trimming.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

-- ------------------------------------------------------------------ --
-- Windows, publishers, retention                                      --
-- ------------------------------------------------------------------ --

-- Models of a horizon that published a prediction (superseded ones
-- included) with issued_at in (asof - window, asof], sorted. base:lastpub:<h>
-- scores each model by its latest issued_at: a model whose latest is at or
-- before asof - window has published nothing in the window, one whose latest
-- is in the window has, and only one whose latest is after asof (a query
-- behind the stream, rare) needs its base:pub:<h>|<m> counted. So the usual
-- cost is one ranged read, whatever the number of models.
local function window_publishers(base, horizon, asof, window)
    local out = {}
    local latest = redis.call('ZRANGEBYSCORE', base .. ':lastpub:' .. horizon,
                              '(' .. (asof - window), '+inf', 'WITHSCORES')
    for i = 1, #latest, 2 do
        local m = latest[i]
        if tonumber(latest[i + 1]) <= asof
            or redis.call('ZCOUNT', base .. ':pub:' .. horizon .. '|' .. m,
                          '(' .. (asof - window), asof) > 0 then
            out[#out + 1] = m
        end
    end
    table.sort(out)
    return out
end

-- The series' watermarks, read once per call: {aw, pw, tc} (actuals',
-- predictions', and the last trim cut), each nil while unset.
local function watermarks(base)
    local w = redis.call('MGET', base .. ':aw', base .. ':pw', base .. ':tc')
    return {aw = tonumber(w[1]), pw = tonumber(w[2]), tc = tonumber(w[3])}
end

local DAY_MS = 86400000

-- Drops state older than the retention behind the series' watermark: what a
-- held or not-yet-applied record needs lies after issued_at - window, and
-- issued_at >= pw (see the invariants). The cut moves in whole days, so
-- the work runs once a day per series, not per record. Old buckets'
-- predictions go with their revision counters; points that a cursor still
-- counts leave its aggregate first.
--
-- The series' watermark (SPEC §1) is the older of wm.aw and wm.pw, and
-- trimming waits until the series has both: with one kind alone, the other
-- may still be unread in another partition and need everything (a replay
-- that reads the actuals' partition first).
--
-- `v` is the validation config (55_validation.lua), given when monitoring
-- is on, or nil: the cut also stays at or before the data of the earliest
-- window not settled yet (its in-sample period starts W before it), so that
-- a gap in the data between a window's end and the actual that closes it
-- cannot trim what its verdict reads, and at or before the data of the next
-- day close.
local function trim(base, retention, W, wm, v)
    if not wm.aw or not wm.pw then
        return
    end
    local cut = math.floor((math.min(wm.aw, wm.pw) - retention) / DAY_MS) * DAY_MS -- buckets < cut go
    if wm.tc and cut <= wm.tc then
        return
    end
    if v then
        local settled = tonumber(redis.call('GET', base .. ':vsettled'))
        local open = redis.call('ZRANGEBYSCORE', base .. ':vclose',
                                settled and '(' .. settled or '-inf', '+inf', 'LIMIT', 0, 1)
        local k = #open > 0 and tonumber(string.match(open[1], '^([^|]*)'))
            or math.floor(wm.aw / v.L)
        cut = math.min(cut, math.floor((k * v.L - v.W) / DAY_MS) * DAY_MS)
        -- Nor into what the next day close reads (chorus_monitor): its
        -- forecasts and actuals, and the window before its buckets. The
        -- closes run after the batch's state calls, so within one batch the
        -- series' watermark can run ahead of them by the batch's span.
        local closed = tonumber(redis.call('GET', base .. ':mclosed'))
        if not closed then
            return -- no day closed yet: the first close may need everything
        end
        cut = math.min(cut, math.floor(((closed + 1) * DAY_MS - v.W) / DAY_MS) * DAY_MS)
        if wm.tc and cut <= wm.tc then
            return
        end
    end
    wm.tc = cut
    redis.call('SET', base .. ':tc', cut)
    local cutoff = '(' .. cut
    local agg = aagg_get(base, W, true)
    if agg and cut - 1 > agg.T - W then
        aagg_drop_front(base, agg, math.min(cut - 1, agg.T))
        aagg_save(base, agg)
    end
    redis.call('ZREMRANGEBYSCORE', base .. ':act', '-inf', cutoff)
    redis.call('ZREMRANGEBYSCORE', base .. ':actv', '-inf', cutoff)
    redis.call('ZREMRANGEBYSCORE', base .. ':multi', '-inf', cutoff)
    local old = redis.call('ZRANGEBYSCORE', base .. ':buckets', '-inf', cutoff)
    for i = 1, #old do
        redis.call('DEL', base .. ':p:' .. old[i])
    end
    redis.call('ZREMRANGEBYSCORE', base .. ':buckets', '-inf', cutoff)
    redis.call('ZREMRANGEBYSCORE', base .. ':gopen', '-inf', cutoff) -- emit.mode=complete
    -- Ensemble revisions go with their buckets; the daily MAPEs, one per
    -- day, stay 100 days longer for the auto baseline (days D-96 .. D-7).
    local ensh = redis.call('SMEMBERS', base .. ':ensh')
    for i = 1, #ensh do
        redis.call('ZREMRANGEBYSCORE', base .. ':ens:' .. ensh[i], '-inf', cutoff)
        redis.call('ZREMRANGEBYSCORE', base .. ':dmape:' .. ensh[i], '-inf',
                   '(' .. (math.floor(cut / DAY_MS) - 100))
    end
    local hms = redis.call('SMEMBERS', base .. ':hms')
    for i = 1, #hms do
        local hm = hms[i]
        local sagg = sagg_get(base, hm, W, true)
        if sagg and cut - 1 > sagg.T - W then
            sagg_drop_front(base, hm, sagg, math.min(cut - 1, sagg.T))
            sagg_save(sagg_key(base, hm), sagg)
        end
        redis.call('ZREMRANGEBYSCORE', base .. ':sc:' .. hm, '-inf', cutoff)
        redis.call('ZREMRANGEBYSCORE', base .. ':pub:' .. hm, '-inf', cutoff)
        -- A model whose latest record is before the cut has nothing left
        -- in base:pub and nothing in any window still to be computed.
        local h = string.match(hm, '^([^|]*)|')
        redis.call('ZREMRANGEBYSCORE', base .. ':lastpub:' .. h, '-inf', cutoff)
    end
end
