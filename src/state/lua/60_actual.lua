-- chorus_actual.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

--
-- chorus_actual KEYS[1]=base
--   ARGV: wm_field, offset, bucket, observed_at, value, retention_ms, window_ms,
--         epoch, validation (see validation_config)
-- Reply: {status, actual_watermark} with status one of applied, duplicate,
-- stale; {'replayed'} or {'fenced'} (see admit).
--
local function actual(keys, args)
    local base = keys[1]
    local wm_field, offset = args[1], args[2]
    local bucket, observed_at, value = tonumber(args[3]), tonumber(args[4]), args[5]
    local retention, window = tonumber(args[6]), tonumber(args[7])
    if not window then
        return redis.error_reply('chorus_actual: window_ms missing (worker older than library)')
    end

    local seen = admit(base, wm_field, offset, args[8])
    if seen then
        return {seen}
    end
    -- Reads that can fail come before the first write: Lua never rolls
    -- back, and a record whose watermark moved would come back "replayed".
    local wm = watermarks(base)
    local newest = wm.aw or -1
    local cur_obs, cur_value = winning_actual(base, bucket)
    advance_watermark(base, wm_field, offset)

    local v = validation_config(args[9])
    if observed_at > newest then
        validation_note_close(base, wm.aw, observed_at, v)
        newest = observed_at
        wm.aw = newest
        redis.call('SET', base .. ':aw', args[4])
    end

    if cur_obs then
        if cur_obs == observed_at and cur_value == value then
            return {'duplicate', newest}
        end
        if cur_obs > observed_at then
            -- Not the winner, but the bucket's value as of times before
            -- the winner was observed.
            put_version(base, bucket, observed_at, value)
            return {'stale', newest}
        end
    end
    put_version(base, bucket, observed_at, value)
    redis.call('ZREMRANGEBYSCORE', base .. ':act', bucket, bucket)
    redis.call('ZADD', base .. ':act', bucket, bucket .. '|' .. args[4] .. '|' .. value)
    aagg_put(base, bucket, cur_obs, cur_value, observed_at, value, window)

    -- (Re-)score every prediction of this bucket.
    local preds = redis.call('HGETALL', base .. ':p:' .. bucket)
    for i = 1, #preds, 2 do
        local hm = preds[i]
        -- Fields starting with '|' are counters; names never contain '|'.
        if string.sub(hm, 1, 1) ~= '|' then
            local f = split(preds[i + 1])
            put_score(base, hm, bucket, args[4], f[2], value, window)
        end
    end
    validation_settle(base, wm, v)
    trim(base, retention, window, wm, v)
    return {'applied', newest}
end
