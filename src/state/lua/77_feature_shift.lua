-- FEATURE_SHIFT (SPEC §6.6) on chorus.feature-importance. Part of the chorus
-- library: src/state/lua/*.lua are concatenated in name order at build
-- (cmake/assemble_lua.cmake). One top-level local (the library's main chunk
-- is limited to 200), its helpers inside it.
--
-- KEYS[1] is the model's base key "<prefix>:{fi|<model>}": the topic is keyed
-- by model, so a model's records are in one input partition, in order, and
-- all of its state is in one slot. Per series (or none: the empty string):
--  * base:fir:<series> zset: the stored records, score computed_at, member
--    "<computed_at>|<seq>|<feature>|<normalised>|..." (seq zero-padded, from
--    base:fiseq, keeps equal records distinct; values are the worker's
--    %.17g strings, so they parse back to the bits it computed).
--  * base:finew:<series>: the newest computed_at stored (the stream's
--    watermark); base:filate:<series>: how many late records came.
--  * base:alert:<fingerprint>: the lifecycle (15_alerts.lua).
--  * base:osnap:<topic>|<partition>: the alerts of a record at its offset,
--    tagged with the batch, until chorus_release (as 70_prediction.lua's
--    base:snap): a re-read record re-emits them unless its batch committed.
--
-- The rule, for a record computed at t: the reference is the mean, over
-- the stored records with computed_at in [t - days, t), of each feature's
-- normalised importance (absent: 0); the reference's top_n features (by
-- mean, ties by name) with a positive mean are judged,
-- change = |cur - ref| / ref, and the alert holds when a change is above
-- the threshold. No stored record in the window: nothing is judged. A record
-- older than the newest stored (late) is stored, so that later records see
-- it, but not judged: the alert follows the stream's newest record.
-- Cost: one ranged read of the window's records and O(records x features)
-- arithmetic per call.
--
-- chorus_feature_importance KEYS[1]=base
--   ARGV: wm_field, offset, batch_id, epoch, committed_batches, model,
--         series ('' for none), computed_at, change, top_n, days, keep_ms,
--         n, then n x (feature, normalised importance), features sorted
-- Reply: {'fenced'}, {'replayed'}, {'late'}, {'unjudged'}, or
--        {'applied' | 'reemit', alert...} (alert arrays as alert_transition's)
local function feature_importance(keys, args)
    local base = keys[1]
    local wm_field, offset, batch_id, epoch = args[1], args[2], args[3], args[4]
    local committed = ',' .. args[5] .. ','
    local model, series, t = args[6], args[7], tonumber(args[8])
    local threshold, top_n, days = tonumber(args[9]), tonumber(args[10]), tonumber(args[11])
    local keep, n = tonumber(args[12]), tonumber(args[13])
    local snap_key = base .. ':osnap:' .. wm_field

    local seen = admit(base, wm_field, offset, epoch)
    if seen == 'fenced' then
        return {seen}
    end
    if seen then
        local snap = redis.call('ZRANGEBYSCORE', snap_key, offset, offset)
        if #snap == 0 then
            return {'replayed'}
        end
        local o, b, packed = string.match(snap[1], '^([^|]*)|([^|]*)|(.*)$')
        redis.call('ZREMRANGEBYSCORE', snap_key, offset, offset)
        if b ~= '' and string.find(committed, ',' .. b .. ',', 1, true) then
            return {'replayed'} -- committed; only the release was lost
        end
        redis.call('ZADD', snap_key, offset, o .. '|' .. batch_id .. '|' .. packed)
        local out = {'reemit'}
        local recs = cmsgpack.unpack(packed)
        for i = 1, #recs do
            out[#out + 1] = recs[i]
        end
        return out
    end

    local rkey = base .. ':fir:' .. series
    local newest = tonumber(redis.call('GET', base .. ':finew:' .. series))
    local day_ms = 86400000
    local from = t - days * day_ms
    -- Reads before the first write (Lua never rolls back).
    local window = redis.call('ZRANGEBYSCORE', rkey, from, '(' .. t)

    advance_watermark(base, wm_field, offset)
    local seq = redis.call('INCR', base .. ':fiseq')
    local parts = {tostring(t), string.format('%012d', seq)}
    local cur = {}
    for i = 0, n - 1 do
        local f, v = args[14 + 2 * i], args[15 + 2 * i]
        parts[#parts + 1] = f
        parts[#parts + 1] = v
        cur[f] = tonumber(v)
    end
    redis.call('ZADD', rkey, t, table.concat(parts, '|'))
    local late = newest and t < newest
    if not late then
        newest = t
        redis.call('SET', base .. ':finew:' .. series, t)
    end
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', '(' .. (newest - keep))
    if late then
        redis.call('INCR', base .. ':filate:' .. series)
        return {'late'}
    end
    if #window == 0 then
        return {'unjudged'}
    end

    -- The reference: sums in the zset's order (computed_at, then seq), so
    -- the bits are the same in every run.
    local sum, names = {}, {}
    for i = 1, #window do
        local fields = split(window[i])
        for j = 3, #fields - 1, 2 do
            local f = fields[j]
            if not sum[f] then
                sum[f] = 0
                names[#names + 1] = f
            end
            sum[f] = sum[f] + tonumber(fields[j + 1])
        end
    end
    local ref = {}
    for i = 1, #names do
        ref[names[i]] = sum[names[i]] / #window
    end
    table.sort(names, function(x, y)
        if ref[x] ~= ref[y] then
            return ref[x] > ref[y]
        end
        return x < y
    end)

    local judged, shifted, changes, refs, curs = 0, {}, {}, {}, {}
    local max_change, max_feature = -1, nil
    for i = 1, math.min(top_n, #names) do
        local f = names[i]
        local r = ref[f]
        if r > 0 then
            local c = cur[f] or 0
            local change = math.abs(c - r) / r
            judged = judged + 1
            changes[#changes + 1] = f .. '=' .. fmt(change)
            refs[#refs + 1] = f .. '=' .. fmt(r)
            curs[#curs + 1] = f .. '=' .. fmt(c)
            if change > threshold then
                shifted[#shifted + 1] = f .. '=' .. fmt(change)
            end
            if change > max_change then
                max_change, max_feature = change, f
            end
        end
    end
    if judged == 0 then
        return {'unjudged'} -- cannot happen: the means of normalised records sum to 1
    end
    local who = model .. (series ~= '' and (' on ' .. series) or '')
    local message
    if #shifted > 0 then
        message = string.format('%s: %d of the top %d features moved more than %.4g of their %d-day mean importance; the largest, %s, went from %.4g to %.4g (change %.4g)',
            who, #shifted, judged, threshold, days, max_feature, ref[max_feature],
            cur[max_feature] or 0, max_change)
    else
        message = string.format('%s: none of the top %d features moved more than %.4g of its %d-day mean importance (largest change %.4g, %s)',
            who, judged, threshold, days, max_change, max_feature)
    end
    local rec = alert_transition(base, {
        holds = #shifted > 0, type = 'FEATURE_SHIFT', severity = 'critical',
        series = series ~= '' and series or nil, model = model, value = max_change,
        threshold = threshold, event_time = t, message = message,
        details = {'computed_at', tostring(t), 'max_change', fmt(max_change),
                   'max_feature', max_feature, 'threshold', fmt(threshold),
                   'shifted', table.concat(shifted, ','), 'changes', table.concat(changes, ','),
                   'reference', table.concat(refs, ','), 'current', table.concat(curs, ','),
                   'top_n', tostring(top_n), 'judged_features', tostring(judged),
                   'reference_records', tostring(#window), 'reference_from', tostring(from),
                   'reference_to', tostring(t), 'days', tostring(days)}})
    if not rec then
        return {'applied'}
    end
    redis.call('ZADD', snap_key, offset, offset .. '|' .. batch_id .. '|' .. cmsgpack.pack({rec}))
    return {'applied', rec}
end

redis.register_function('chorus_feature_importance', feature_importance)
