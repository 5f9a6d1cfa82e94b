#!lua name=chorus_peer
--
-- The Python peer's Redis functions (bench/peer/peer.py): a frozen copy of
-- Chorus's walking-skeleton state functions (src/state/chorus.lua at commit
-- 7252770), renamed so that they load beside Chorus's own library. The peer
-- keeps the logic a user would write (per-record upserts, the window
-- re-read on every prediction) while Chorus's own functions evolve; the
-- benchmark therefore compares Chorus against a fixed peer.
--

local function split(s)
    local out = {}
    for part in string.gmatch(s, '([^|]*)|?') do
        out[#out + 1] = part
    end
    -- gmatch yields one trailing empty match; drop it.
    if out[#out] == '' then
        out[#out] = nil
    end
    return out
end

-- Returns true (and the reply) when this record was already applied.
local function already_applied(base, wm_field, offset)
    local wm = redis.call('HGET', base .. ':wm', wm_field)
    return wm and tonumber(offset) <= tonumber(wm)
end

local function advance_watermark(base, wm_field, offset)
    redis.call('HSET', base .. ':wm', wm_field, offset)
end

-- The bucket's winning actual as {observed_at, value_string}, or nil.
local function winning_actual(base, bucket)
    local m = redis.call('ZRANGEBYSCORE', base .. ':act', bucket, bucket)
    if #m == 0 then
        return nil
    end
    local f = split(m[1])
    return tonumber(f[2]), f[3]
end

-- Writes the scored pair of (horizon|model) for a bucket. One member per
-- bucket: "<bucket>|<observed_at>|<prediction>|<actual>".
local function put_score(base, hm, bucket, observed_at, prediction, actual)
    local key = base .. ':sc:' .. hm
    redis.call('ZREMRANGEBYSCORE', key, bucket, bucket)
    redis.call('ZADD', key, bucket,
               bucket .. '|' .. observed_at .. '|' .. prediction .. '|' .. actual)
end

-- Scored pairs of (horizon|model) as of time `asof`: buckets in
-- (asof - window, asof] whose winning actual was observed at or before
-- asof. Returns a flat array {prediction, actual, ...} in bucket order.
local function window_scores(base, hm, asof, window)
    local out = {}
    local m = redis.call('ZRANGEBYSCORE', base .. ':sc:' .. hm, '(' .. (asof - window), asof)
    for i = 1, #m do
        local f = split(m[i])
        if tonumber(f[2]) <= asof then
            out[#out + 1] = f[3]
            out[#out + 1] = f[4]
        end
    end
    return out
end

-- Winning actuals as of `asof`, flat {bucket, value, ...} in bucket order.
local function window_actuals(base, asof, window)
    local out = {}
    local m = redis.call('ZRANGEBYSCORE', base .. ':act', '(' .. (asof - window), asof)
    for i = 1, #m do
        local f = split(m[i])
        if tonumber(f[2]) <= asof then
            out[#out + 1] = tonumber(f[1])
            out[#out + 1] = f[3]
        end
    end
    return out
end

-- Models of a horizon that published a prediction (superseded ones
-- included) with issued_at in (asof - window, asof].
local function window_publishers(base, horizon, asof, window)
    local out = {}
    local models = redis.call('SMEMBERS', base .. ':models:' .. horizon)
    for i = 1, #models do
        local n = redis.call('ZCOUNT', base .. ':pub:' .. horizon .. '|' .. models[i],
                             '(' .. (asof - window), asof)
        if n > 0 then
            out[#out + 1] = models[i]
        end
    end
    return out
end

-- Drops state that is older than the retention, measured from the series'
-- newest actual. Old buckets' predictions go with their revision counters.
local function trim(base, horizon_models, newest, retention)
    local cutoff = '(' .. (newest - retention)
    redis.call('ZREMRANGEBYSCORE', base .. ':act', '-inf', cutoff)
    local old = redis.call('ZRANGEBYSCORE', base .. ':buckets', '-inf', cutoff)
    for i = 1, #old do
        redis.call('DEL', base .. ':p:' .. old[i])
    end
    redis.call('ZREMRANGEBYSCORE', base .. ':buckets', '-inf', cutoff)
    for i = 1, #horizon_models do
        redis.call('ZREMRANGEBYSCORE', base .. ':sc:' .. horizon_models[i], '-inf', cutoff)
    end
end

--
-- peer_actual KEYS[1]=base
--   ARGV: wm_field, offset, bucket, observed_at, value, retention_ms
-- Reply: {status} with status one of applied, duplicate, stale, replayed.
--
local function actual(keys, args)
    local base = keys[1]
    local wm_field, offset = args[1], args[2]
    local bucket, observed_at, value = tonumber(args[3]), tonumber(args[4]), args[5]
    local retention = tonumber(args[6])

    if already_applied(base, wm_field, offset) then
        return {'replayed'}
    end
    advance_watermark(base, wm_field, offset)

    local newest = tonumber(redis.call('GET', base .. ':aw') or '-1')
    if observed_at > newest then
        newest = observed_at
        redis.call('SET', base .. ':aw', args[4])
    end

    local cur_obs, cur_value = winning_actual(base, bucket)
    if cur_obs then
        if cur_obs > observed_at then
            return {'stale'}
        end
        if cur_obs == observed_at and cur_value == value then
            return {'duplicate'}
        end
    end
    redis.call('ZREMRANGEBYSCORE', base .. ':act', bucket, bucket)
    redis.call('ZADD', base .. ':act', bucket, bucket .. '|' .. args[4] .. '|' .. value)

    -- (Re-)score every prediction of this bucket.
    local preds = redis.call('HGETALL', base .. ':p:' .. bucket)
    local scored = {}
    for i = 1, #preds, 2 do
        local hm = preds[i]
        -- Fields starting with '|' are counters; names never contain '|'.
        if string.sub(hm, 1, 1) ~= '|' then
            local f = split(preds[i + 1])
            put_score(base, hm, bucket, args[4], f[2], value)
            scored[#scored + 1] = hm
        end
    end
    trim(base, scored, newest, retention)
    return {'applied'}
end

--
-- peer_prediction KEYS[1]=base
--   ARGV: wm_field, offset, batch_id, force, horizon, model, bucket,
--         issued_at, value, record, window_ms, retention_ms, want_expected
--   `record` is the canonical text of every field of the prediction, so
--   that an exact duplicate is recognised.
-- Reply:
--   {'hold'}, {'replayed'}, {'duplicate'}, {'stale'}, or
--   {'applied', revision, asof, {model, issued_at, value, ...},
--    {{prediction, actual, ...} per model, same order}, {bucket, value, ...},
--    {expected model, ...}}
--
local function prediction(keys, args)
    local base = keys[1]
    local wm_field, offset, batch_id, force = args[1], args[2], args[3], args[4]
    local horizon, model, bucket = args[5], args[6], tonumber(args[7])
    local issued_at, value, record = tonumber(args[8]), args[9], args[10]
    local window, retention = tonumber(args[11]), tonumber(args[12])
    local want_expected = args[13] == '1'

    if already_applied(base, wm_field, offset) then
        return {'replayed'}
    end

    -- Hold (SPEC §9.2): process a prediction only once the series' actuals
    -- have caught up to its issued_at, so that "as of issued_at" sees the
    -- same actuals in every run. Once one record of the series is held in
    -- a batch, the later ones of that batch are held too, keeping order.
    if force ~= '1' then
        local held_key = base .. ':held'
        if redis.call('GET', held_key) == batch_id then
            return {'hold'}
        end
        local newest = tonumber(redis.call('GET', base .. ':aw') or '-1')
        if newest < issued_at then
            redis.call('SET', held_key, batch_id, 'PX', 600000)
            return {'hold'}
        end
    end
    advance_watermark(base, wm_field, offset)

    -- Every published record counts for models_expected, superseded too.
    local hm = horizon .. '|' .. model
    redis.call('SADD', base .. ':models:' .. horizon, model)
    redis.call('ZADD', base .. ':pub:' .. hm, issued_at, args[8])
    redis.call('ZREMRANGEBYSCORE', base .. ':pub:' .. hm, '-inf', '(' .. (issued_at - retention))

    local group = base .. ':p:' .. bucket
    local cur = redis.call('HGET', group, hm)
    if cur then
        if cur == record then
            return {'duplicate'}
        end
        local cur_issued = tonumber(split(cur)[1])
        if cur_issued > issued_at then
            return {'stale'}
        end
    end
    redis.call('HSET', group, hm, record)
    redis.call('ZADD', base .. ':buckets', bucket, bucket)
    local revision = redis.call('HINCRBY', group, '|rev|' .. horizon, 1)

    local obs, act = winning_actual(base, bucket)
    if obs then
        put_score(base, hm, bucket, obs, value, act)
    end

    -- Compute inputs, as of the latest issued_at present in the group.
    local fields = redis.call('HGETALL', group)
    local present, asof = {}, issued_at
    local prefix = horizon .. '|'
    for i = 1, #fields, 2 do
        if string.sub(fields[i], 1, #prefix) == prefix then
            local f = split(fields[i + 1])
            local m = string.sub(fields[i], #prefix + 1)
            present[#present + 1] = {m, f[1], f[2]}
            if tonumber(f[1]) > asof then
                asof = tonumber(f[1])
            end
        end
    end
    local models, scores = {}, {}
    for i = 1, #present do
        models[#models + 1] = present[i][1]
        models[#models + 1] = present[i][2]
        models[#models + 1] = present[i][3]
        scores[i] = window_scores(base, prefix .. present[i][1], asof, window)
    end
    local expected = {}
    if want_expected then
        expected = window_publishers(base, horizon, asof, window)
    end
    return {'applied', revision, asof, models, scores, window_actuals(base, asof, window),
            expected}
end


redis.register_function('peer_actual', actual)
redis.register_function('peer_prediction', prediction)
