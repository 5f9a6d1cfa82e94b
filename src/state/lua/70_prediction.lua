-- chorus_prediction.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

--
-- chorus_prediction KEYS[1]=base
--   ARGV: wm_field, offset, batch_id, force, horizon, model, bucket,
--         issued_at, value, record, window_ms, retention_ms, want_expected,
--         epoch, committed_batches, validation (see validation_config),
--         emit (optional; see emit_config: absent or "-" in emit.mode=every)
--   `committed_batches` lists, comma-separated, the batches whose
--   transactions committed this input partition's offsets and whose records
--   may still be read again (the worker reads them back from the offsets'
--   commit metadata; "-" when none): a snapshot left by one of them belongs
--   to a committed output and is dropped instead of re-emitted.
--   `record` is the canonical text of every field of the prediction, so
--   that an exact duplicate is recognised.
-- Reply:
--   {'hold', actual_watermark}, {'replayed'}, {'fenced'}, {'duplicate'},
--   {'stale'}, or
--   {'applied' | 'reemit', revision, asof, {model, issued_at, value, ...},
--    {{n_se, Σse, n_ape, Σape} per model, same order},
--    {n, last_bucket, last_value, {Σv}, {Σv²}, n_d, {Σd}, {Σd²},
--     {spacing, count, ...}} (each {sum} the canonical components of an
--     exact sum, largest first, or {+inf}; every double 8 little-endian bytes),
--    {expected model, ...}, overfitting ('1' when the latest validation
--    window of (series, horizon) closed by asof is overfitting, else '0')}
--   Models and expected models are sorted; every aggregate is as of asof.
--   In emit.mode=complete an applied prediction answers {'applied', view, ...}
--   instead: one view {horizon, bucket, revision, asof, models, stats,
--   actuals, expected, overfitting} per forecast it emits, possibly none
--   (65_emit_complete.lua); duplicate and stale records emit nothing.
--
local function prediction(keys, args)
    local base = keys[1]
    local wm_field, offset, batch_id, force = args[1], args[2], args[3], args[4]
    local horizon, model, bucket = args[5], args[6], tonumber(args[7])
    local issued_at, value, record = tonumber(args[8]), args[9], args[10]
    local window, retention = tonumber(args[11]), tonumber(args[12])
    local want_expected = args[13] == '1'
    local committed_batches = ',' .. args[15] .. ','

    local snap_key = base .. ':snap:' .. wm_field
    local seen = admit(base, wm_field, offset, args[14])
    if seen == 'fenced' then
        return {seen}
    end
    if seen then
        local snap = redis.call('ZRANGEBYSCORE', snap_key, offset, offset)
        if #snap == 0 then
            return {'replayed'}
        end
        -- Member: "<offset>|<batch id>|<msgpack reply>".
        local o, b, packed = string.match(snap[1], '^([^|]*)|([^|]*)|(.*)$')
        if b ~= '' and string.find(committed_batches, ',' .. b .. ',', 1, true) then
            -- Its output committed; the release was lost (a crash right
            -- after the commit). Re-emitting would duplicate it.
            redis.call('ZREMRANGEBYSCORE', snap_key, offset, offset)
            return {'replayed'}
        end
        -- The output of an aborted or unfinished batch: emit it again, now
        -- as part of this batch.
        if b ~= batch_id then
            redis.call('ZREMRANGEBYSCORE', snap_key, offset, offset)
            redis.call('ZADD', snap_key, offset, o .. '|' .. batch_id .. '|' .. packed)
        end
        local reply = cmsgpack.unpack(packed)
        reply[1] = 'reemit'
        return reply
    end

    -- Hold (SPEC §9.2): process a prediction only once the series' actuals
    -- have caught up to its issued_at, so that "as of issued_at" sees the
    -- same actuals in every run. Once one record of the series is held in
    -- a batch, the later ones of that batch are held too, keeping order.
    if force ~= '1' then
        local held_key = base .. ':held'
        local got = redis.call('MGET', base .. ':aw', held_key)
        local newest = tonumber(got[1]) or -1
        if got[2] == batch_id then
            return {'hold', newest}
        end
        if newest < issued_at then
            redis.call('SET', held_key, batch_id, 'PX', 600000)
            return {'hold', newest}
        end
    end
    -- Reads that can fail come before the first write (see actual()).
    local hm = horizon .. '|' .. model
    local group = base .. ':p:' .. bucket
    local cur = redis.call('HGET', group, hm)
    local obs, act = winning_actual(base, bucket)
    local wm = watermarks(base)
    advance_watermark(base, wm_field, offset)
    if not wm.pw or issued_at > wm.pw then
        wm.pw = issued_at
        redis.call('SET', base .. ':pw', args[8])
    end

    -- Every published record counts for models_expected, superseded too.
    -- A model with a record in this group is in base:hms already.
    if not cur then
        redis.call('SADD', base .. ':hms', hm)
    end
    redis.call('ZADD', base .. ':pub:' .. hm, issued_at, args[8])
    redis.call('ZADD', base .. ':lastpub:' .. horizon, 'GT', issued_at, model)

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

    local own_agg
    if obs then
        own_agg = put_score(base, hm, bucket, obs, value, act, window)
    end

    local ec = emit_config(args[17])
    if ec then
        -- emit.mode=complete: the groups this call emits (65_emit_complete.lua).
        local v = validation_config(args[16])
        validation_settle(base, wm, v)
        local reply = complete_emissions(base, ec, horizon, bucket, issued_at, window,
                                         want_expected, v)
        if #reply > 1 then
            redis.call('ZADD', snap_key, offset,
                       offset .. '|' .. batch_id .. '|' .. cmsgpack.pack(reply))
        end
        trim(base, retention, window, wm, v)
        return reply
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
    table.sort(present, function(x, y)
        return x[1] < y[1]
    end)
    local models, stats = {}, {}
    local shadow = shadowed(base, asof, window) or false
    for i = 1, #present do
        models[#models + 1] = present[i][1]
        models[#models + 1] = present[i][2]
        models[#models + 1] = present[i][3]
        stats[i] = score_stats(base, prefix .. present[i][1], asof, window, true,
                               present[i][1] == model and own_agg or nil, shadow)
    end
    local expected = {}
    if want_expected then
        expected = window_publishers(base, horizon, asof, window)
    end
    -- Windows closed by now are settled before the forecast asks (asof <= pw).
    local v = validation_config(args[16])
    validation_settle(base, wm, v)
    local reply = {'applied', revision, asof, models, stats,
                   actual_stats(base, asof, window, true, shadow), expected,
                   overfitting_as_of(base, horizon, asof, v) and '1' or '0'}
    -- The offset prefix keeps members unique even if two replies are equal.
    redis.call('ZADD', snap_key, offset, offset .. '|' .. batch_id .. '|' .. cmsgpack.pack(reply))
    trim(base, retention, window, wm, v)
    return reply
end

