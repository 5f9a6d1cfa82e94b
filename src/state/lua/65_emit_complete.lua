-- emit.mode=complete (SPEC §5): which groups a prediction call emits.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).
--
-- A group (series, h, b) is emitted when it becomes complete, or when it
-- closes with at least min_models present; once emitted, every later change
-- is emitted too. Its `revision` counts its emissions, from 1.
--
-- A group closes at event time C = the earlier of
--   * the observed_at of the first actual of the series with bucket >= b
--     (an actual for its bucket or a later one), and
--   * the issued_at of the first prediction of (series, h) issued at or
--     after b.
-- The emission at a close must show the same predictions in every run, so
-- it is made by the first applied prediction of the series whose issued_at
-- reaches C, never by the actual's own call: when an actual is processed,
-- predictions issued before it may still be unread in another partition
-- (or wait in a worker's hold), and which of them are in the group would
-- depend on timing. A prediction issued at I is applied only once every
-- actual observed at or before I is (the hold), and after every earlier
-- prediction of its series (one partition, in order), so at its call
--   * the groups of its horizon with b <= I are closed (by it), and
--   * the groups of any horizon with b <= B(I) are closed (by an actual),
-- where B(I) is the bucket of the newest actual observed at or before I;
-- and what they hold is the same in every run. chorus_actual therefore
-- emits nothing and keeps no snapshot: the closes it decides are emitted,
-- and kept until the commit, by that prediction's call (base:snap).
--
-- Keys (docs/redis-keys.md):
--   base:gopen        zset, score b, member "<b>|<h>": the groups neither
--                     emitted nor closed (the index a close reads)
--   base:p:<b> field "|em|<h>"  emissions of the group (its revision)
--   base:p:<b> field "|cl|<h>"  "1": closed with too few models, not emitted

-- The emit argument of chorus_prediction: nil in emit.mode=every (absent
-- or "-"), else {min = emit.min_models, expected = the configured models
-- of the prediction's horizon (empty: the window's publishers)}.
local function emit_config(arg)
    if not arg or arg == '-' then
        return nil
    end
    local f = split(arg)
    local c = {min = tonumber(f[1]), expected = {}}
    for i = 2, #f do
        c.expected[#c.expected + 1] = f[i]
    end
    return c
end

-- B(t): the bucket of the newest actual version observed at or before t, or
-- nil. Versions are walked from the newest bucket down; only versions
-- observed after t (a bucket's own later corrections) are skipped.
local function actual_bucket_by(base, t)
    local off = 0
    while true do
        local m = redis.call('ZREVRANGEBYSCORE', base .. ':actv', t, '-inf', 'LIMIT', off, 8)
        if #m == 0 then
            return nil
        end
        for i = 1, #m do
            local b, o = parse_act(m[i])
            if o <= t then
                return b
            end
        end
        off = off + #m
    end
end

-- The models present in group (h, b): {model, issued_at, value} sorted by
-- model, and the group's as-of time (the latest issued_at present).
local function group_present(base, horizon, bucket)
    local fields = redis.call('HGETALL', base .. ':p:' .. bucket)
    local present, asof = {}, nil
    local prefix = horizon .. '|'
    for i = 1, #fields, 2 do
        if string.sub(fields[i], 1, #prefix) == prefix then
            local f = split(fields[i + 1])
            present[#present + 1] = {string.sub(fields[i], #prefix + 1), f[1], f[2]}
            if not asof or tonumber(f[1]) > asof then
                asof = tonumber(f[1])
            end
        end
    end
    table.sort(present, function(x, y)
        return x[1] < y[1]
    end)
    return present, asof
end

-- What a forecast of group (h, b) is computed from, as of the group's as-of
-- time, exactly as chorus_prediction computes it in emit.mode=every:
-- {h, b, revision, asof, models, stats, actuals, expected, overfitting}.
-- `expected` is the window's publishers when want_expected (the worker uses
-- it only for a horizon without a configured list).
local function group_view(base, horizon, bucket, present, asof, window, want_expected, v)
    local models, stats = {}, {}
    local prefix = horizon .. '|'
    local shadow = shadowed(base, asof, window) or false
    for i = 1, #present do
        models[#models + 1] = present[i][1]
        models[#models + 1] = present[i][2]
        models[#models + 1] = present[i][3]
        stats[i] = score_stats(base, prefix .. present[i][1], asof, window, true, nil, shadow)
    end
    local expected = {}
    if want_expected then
        expected = window_publishers(base, horizon, asof, window)
    end
    return {horizon, bucket, 0, asof, models, stats, actual_stats(base, asof, window, true, shadow),
            expected, overfitting_as_of(base, horizon, asof, v) and '1' or '0'}
end

-- Counts one emission of group (h, b) into its view; it leaves the index.
local function emit_view(base, view)
    local b, h = view[2], view[1]
    redis.call('ZREM', base .. ':gopen', b .. '|' .. h)
    view[3] = redis.call('HINCRBY', base .. ':p:' .. b, '|em|' .. h, 1)
    return view
end

-- After prediction (horizon, bucket, issued_at) was applied in
-- emit.mode=complete: the reply {'applied', view, ...} of the groups it
-- emits, closed groups first (by bucket, then horizon), its own last.
local function complete_emissions(base, ec, horizon, bucket, issued_at, window, want_expected, v)
    local reply = {'applied'}
    local own = bucket .. '|' .. horizon
    local seen, seen_read = nil, false
    local function closed_by_actual(b)
        if not seen_read then
            seen, seen_read = actual_bucket_by(base, issued_at), true
        end
        return seen ~= nil and b <= seen
    end

    -- Closes of other groups: of this horizon with b <= issued_at, of any
    -- horizon with b <= B(issued_at) (<= issued_at too).
    local open = redis.call('ZRANGEBYSCORE', base .. ':gopen', '-inf', issued_at)
    for i = 1, #open do
        local m = open[i]
        local b, h = string.match(m, '^([^|]*)|(.*)$')
        b = tonumber(b)
        if m ~= own and (h == horizon or closed_by_actual(b)) then
            local present, asof = group_present(base, h, b)
            if #present >= ec.min then
                reply[#reply + 1] = emit_view(base, group_view(base, h, b, present, asof, window,
                                                               true, v))
            else
                redis.call('ZREM', base .. ':gopen', m)
                redis.call('HSET', base .. ':p:' .. b, '|cl|' .. h, '1')
            end
        end
    end

    -- Its own group.
    local group = base .. ':p:' .. bucket
    local marks = redis.call('HMGET', group, '|em|' .. horizon, '|cl|' .. horizon)
    local present, asof = group_present(base, horizon, bucket)
    local view = group_view(base, horizon, bucket, present, asof, window, want_expected, v)
    local expected = ec.expected
    if #expected == 0 then
        expected = view[8]
    end
    local have = {}
    for i = 1, #present do
        have[present[i][1]] = true
    end
    local complete = true
    for i = 1, #expected do
        if not have[expected[i]] then
            complete = false
            break
        end
    end
    local closed = marks[2] ~= false or issued_at >= bucket or closed_by_actual(bucket)
    if marks[1] ~= false or complete or (closed and #present >= ec.min) then
        reply[#reply + 1] = emit_view(base, view)
    elseif closed then
        redis.call('ZREM', base .. ':gopen', own)
        redis.call('HSET', group, '|cl|' .. horizon, '1')
    else
        redis.call('ZADD', base .. ':gopen', bucket, own)
    end
    return reply
end
