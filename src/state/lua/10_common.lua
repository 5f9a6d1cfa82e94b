-- Record parsing, the offset watermark and fencing (admit), the winning actual.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

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

-- base:act member "<bucket>|<observed_at>|<value>" -> bucket, observed_at, value string.
local function parse_act(m)
    local b, o, v = string.match(m, '^([^|]*)|([^|]*)|(.*)$')
    return tonumber(b), tonumber(o), v
end

-- base:sc:* member "<bucket>|<observed_at>|<prediction>|<actual>".
local function parse_score(m)
    local b, o, p, a = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    return tonumber(b), tonumber(o), p, a
end

-- Checks the call's epoch and whether this record was already applied.
-- Returns 'fenced' (the partition has a newer owner), 'replayed' or nil.
-- Records a newer epoch; a fenced call writes nothing.
local function admit(base, wm_field, offset, epoch)
    local got = redis.call('HMGET', base .. ':wm', wm_field, 'e|' .. wm_field)
    local wm, seen = got[1], tonumber(got[2])
    epoch = tonumber(epoch)
    if seen and epoch < seen then
        return 'fenced'
    end
    if not seen or epoch > seen then
        redis.call('HSET', base .. ':wm', 'e|' .. wm_field, epoch)
    end
    if wm and tonumber(offset) <= tonumber(wm) then
        return 'replayed'
    end
    return nil
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
    local _, o, v = parse_act(m[1])
    return o, v
end

