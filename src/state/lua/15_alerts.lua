-- The alert lifecycle (SPEC §6) and the formatting of alert records, shared
-- by every rule. Part of the chorus library: src/state/lua/*.lua are
-- concatenated in name order at build (cmake/assemble_lua.cmake).
--
-- Alert state: base:alert:<fingerprint> {state, severity, since}; a rule
-- reports whether its condition holds, and alert_transition emits firing /
-- firing with a new severity / resolved, nothing else.

local function fmt(x)
    return string.format('%.17g', x)
end

local function day_string(d)
    -- Civil date of a day number (days since 1970-01-01), proleptic Gregorian.
    local z = d + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
        - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local day = doy - math.floor((153 * mp + 2) / 5) + 1
    local month = mp < 10 and mp + 3 or mp - 9
    local year = yoe + era * 400 + (month <= 2 and 1 or 0)
    return string.format('%04d-%02d-%02d', year, month, day)
end

-- The lifecycle of one alert. `a` is the evaluation: holds (boolean) and,
-- for the record, type, severity, series, horizon, model, indicator, value,
-- threshold, event_time, message, details ({k, v, k, v, ...}). Returns the
-- Alert record to emit, or nil.
-- At most `max` bytes of s, cut before a UTF-8 continuation byte, so that a
-- message or detail built from long names still fits its field of the
-- Alert record (CHORUS_ALERT_* in record.h) and stays valid UTF-8.
local function clip_text(s, max)
    if #s <= max then
        return s
    end
    local n = max - 3
    while n > 0 do
        local c = string.byte(s, n + 1)
        if c < 0x80 or c >= 0xC0 then
            break
        end
        n = n - 1
    end
    return string.sub(s, 1, n) .. '...'
end

local function alert_transition(base, a)
    local fp = a.type .. '|' .. (a.series or '') .. '|' .. (a.horizon or '') .. '|'
        .. (a.model or '') .. '|' .. (a.indicator or '')
    local key = base .. ':alert:' .. fp
    local cur = redis.call('HMGET', key, 'state', 'severity')
    local firing = cur[1] == 'firing'
    local state
    if a.holds then
        if firing and cur[2] == a.severity then
            return nil
        end
        state = 'firing'
        redis.call('HSET', key, 'state', 'firing', 'severity', a.severity, 'since',
                   firing and redis.call('HGET', key, 'since') or a.event_time)
    else
        if not firing then
            return nil
        end
        state = 'resolved'
        a.severity = cur[2]
        redis.call('HSET', key, 'state', 'resolved')
    end
    local rec = {fp, a.type, a.severity, state, a.series or '', a.horizon or '', a.model or '',
                 a.indicator or '', fmt(a.value), fmt(a.threshold), tostring(a.event_time),
                 clip_text(a.message, 511)}
    for i = 1, #a.details do
        rec[#rec + 1] = i % 2 == 0 and clip_text(a.details[i], 511) or a.details[i]
    end
    return rec
end

-- Re-emits the outputs (alerts, validation windows) that earlier attempts
-- at the records of `ranges` ("<field>:<lo>:<hi>:<committed,...>;...")
-- kept in base:osnap:<field>, re-tagged with this batch, and drops those of
-- committed batches. Used by chorus_monitor and chorus_global.
local function snapshots_again(base, ranges, batch_id, out)
    for field, lo, hi, committed in string.gmatch(ranges, '([^:;]+):(%d+):(%d+):([^;]*)') do
        local key = base .. ':osnap:' .. field
        local got = redis.call('ZRANGEBYSCORE', key, lo, hi)
        committed = ',' .. committed .. ','
        for i = 1, #got do
            local o, b, packed = string.match(got[i], '^([^|]*)|([^|]*)|(.*)$')
            redis.call('ZREM', key, got[i])
            if b == '' or not string.find(committed, ',' .. b .. ',', 1, true) then
                local recs = cmsgpack.unpack(packed)
                for j = 1, #recs do
                    out[#out + 1] = recs[j]
                end
                redis.call('ZADD', key, o, o .. '|' .. batch_id .. '|' .. packed)
            end
        end
    end
end
