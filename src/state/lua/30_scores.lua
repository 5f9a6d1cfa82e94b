-- Score aggregates per (series, horizon, model), and actual versions.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

-- ------------------------------------------------------------------ --
-- Score aggregates: per (series, horizon, model)                       --
-- ------------------------------------------------------------------ --

local function sagg_new(W, T)
    return {W = W, T = T, n_se = 0, big_se = 0, se = {}, n_ape = 0, big_ape = 0, ape = {}, pn = 0}
end

local function sagg_load(key)
    local s = redis.call('GET', key)
    if not s then
        return nil
    end
    local t = unpack_doubles(s)
    if not t or t[1] ~= AGG_VERSION then
        return nil
    end
    local agg = {W = t[2], T = t[3], n_se = t[4], big_se = t[5], n_ape = t[6], big_ape = t[7],
                 pn = t[8]}
    local i = 9
    agg.se, i = get_list(t, i)
    agg.ape, i = get_list(t, i)
    return agg
end

local function sagg_save(key, agg)
    local t = {AGG_VERSION, agg.W, agg.T, agg.n_se, agg.big_se, agg.n_ape, agg.big_ape, agg.pn}
    put_list(t, agg.se)
    put_list(t, agg.ape)
    redis.call('SET', key, pack_doubles(t))
end

-- Adds (sign = 1) or removes (sign = -1) one scored pair. The operations
-- are those of chorus_score_error/_ape in C, in the same order, so that
-- each term is the same double there and here.
local function sagg_point(agg, pred, act, sign)
    local p, a = tonumber(pred), tonumber(act)
    local e = p - a
    local se = e * e
    agg.n_se = agg.n_se + sign
    if se < BIG_TERM then
        if se ~= 0 then
            xadd(agg.se, sign * se)
        end
    else
        agg.big_se = agg.big_se + sign
    end
    if a ~= 0 then
        local ape = 100 * math.abs(e) / math.abs(a)
        agg.n_ape = agg.n_ape + sign
        if ape < BIG_TERM then
            if ape ~= 0 then
                xadd(agg.ape, sign * ape)
            end
        else
            agg.big_ape = agg.big_ape + sign
        end
    end
end

-- A double in a reply: 8 little-endian bytes, the exact bits, with no
-- formatting here and no strtod in the worker (SPEC-level exactness kept).
local function bin(x)
    return struct.pack('<d', x)
end

local function sum_string(p, big)
    if big > 0 then
        return bin(math.huge)
    end
    return bin(xround(p))
end

-- {n_se, Σse, n_ape, Σape}: what the worker computes MSE and MAPE from.
local function sagg_reply(agg)
    return {agg.n_se, sum_string(agg.se, agg.big_se), agg.n_ape, sum_string(agg.ape, agg.big_ape)}
end

-- ------------------------------------------------------------------ --
-- Actual versions                                                      --
-- ------------------------------------------------------------------ --
-- "As of I" a bucket's actual is its latest version observed at or before
-- I, not its current winner: a correction observed after I must not hide
-- the value that was known at I, or a replay (which sees the correction
-- already) would differ from the live run (SPEC §9.2). Every version is
-- kept in base:actv ("<bucket>|<observed_at>|<value>", scored by bucket);
-- base:multi holds the buckets with more than one version. The cursors
-- follow the winners; a query whose window holds a bucket whose winner is
-- not visible yet but an older version is, is answered by a scan that uses
-- that version ("shadowed" buckets). Corrections are rare, so this costs a
-- lookup in a small set on the common path.

-- Records a version; a version with the same observed_at is replaced (the
-- later arrival wins a tie). Returns nothing.
local function put_version(base, b, obs, v)
    local key = base .. ':actv'
    local m = redis.call('ZRANGEBYSCORE', key, b, b)
    for i = 1, #m do
        local _, o = parse_act(m[i])
        if o == obs then
            redis.call('ZREM', key, m[i])
        end
    end
    redis.call('ZADD', key, b, b .. '|' .. obs .. '|' .. v)
    if redis.call('ZCOUNT', key, b, b) > 1 then
        redis.call('ZADD', base .. ':multi', b, b)
    end
end

-- Buckets of (I - W, I] whose winner was observed after I but which had a
-- version at or before I: bucket -> value string of the latest such version.
-- Returns nil when there is none (the common case).
-- The version of bucket b's actual observed at or before I (SPEC §1 "as
-- of"), as stored, or nil.
local function version_as_of(base, b, I)
    local best_o, best_v
    local m = redis.call('ZRANGEBYSCORE', base .. ':actv', b, b)
    for j = 1, #m do
        local _, o, v = parse_act(m[j])
        if o <= I and (best_o == nil or o > best_o) then
            best_o, best_v = o, v
        end
    end
    return best_v
end

local function shadowed(base, I, W)
    local out
    local buckets = redis.call('ZRANGEBYSCORE', base .. ':multi', '(' .. (I - W), I)
    for i = 1, #buckets do
        local b = tonumber(buckets[i])
        local wobs = winning_actual(base, b)
        if wobs and wobs > I then
            local best_v = version_as_of(base, b, I)
            if best_v then
                out = out or {}
                out[b] = best_v
            end
        end
    end
    return out
end

-- The aggregate as of I by scanning the window, and the pending buckets
-- ({vis, bucket} pairs: in the window but not visible yet).
local function sagg_scan(base, hm, I, W, shadow)
    local agg, pend = sagg_new(W, I), {}
    local m = redis.call('ZRANGEBYSCORE', base .. ':sc:' .. hm, '(' .. (I - W), I)
    for i = 1, #m do
        local b, o, p, a = parse_score(m[i])
        if o <= I then
            sagg_point(agg, p, a, 1)
        elseif shadow and shadow[b] then
            sagg_point(agg, p, shadow[b], 1)
        else
            pend[#pend + 1] = {o, b}
        end
    end
    return agg, pend
end

-- Removes the points visible at agg.T with bucket in (T - W, upto].
local function sagg_drop_front(base, hm, agg, upto)
    local T = agg.T
    local m = redis.call('ZRANGEBYSCORE', base .. ':sc:' .. hm, '(' .. (T - agg.W), upto)
    for i = 1, #m do
        local _, o, p, a = parse_score(m[i])
        if o <= T then
            sagg_point(agg, p, a, -1)
        end
    end
end

-- Moves the cursor forward from agg.T to I > agg.T. commit = false reads
-- only (for no-writes functions): the pending set is left as it was.
local function sagg_advance(base, hm, agg, I, commit)
    local T, W = agg.T, agg.W
    local L = I - W
    local sc, sp = base .. ':sc:' .. hm, base .. ':sp:' .. hm
    if L >= T then
        -- Nothing of the old window survives.
        local fresh = sagg_new(W, T)
        for k, v in pairs(fresh) do
            agg[k] = v
        end
        if commit then
            redis.call('DEL', sp)
        end
    elseif agg.pn == 0 then
        sagg_drop_front(base, hm, agg, L)
    else
        sagg_drop_front(base, hm, agg, L)
        -- Buckets <= T whose winning actual became visible in (T, I].
        local pend = redis.call('ZRANGEBYSCORE', sp, '-inf', I)
        for i = 1, #pend do
            local b = tonumber(pend[i])
            if b > L then
                local e = redis.call('ZRANGEBYSCORE', sc, b, b)
                if #e > 0 then
                    local _, o, p, a = parse_score(e[1])
                    if o > T and o <= I then
                        sagg_point(agg, p, a, 1)
                    end
                end
            end
        end
        if commit and #pend > 0 then
            agg.pn = agg.pn - redis.call('ZREMRANGEBYSCORE', sp, '-inf', I)
        end
    end
    -- Buckets in (T, I]: visible now, or pending.
    local m = redis.call('ZRANGEBYSCORE', sc, '(' .. math.max(T, L), I)
    for i = 1, #m do
        local b, o, p, a = parse_score(m[i])
        if o <= I then
            sagg_point(agg, p, a, 1)
        elseif commit then
            agg.pn = agg.pn + redis.call('ZADD', sp, o, b)
        end
    end
    agg.T = I
end

local function sagg_key(base, hm)
    return base .. ':sa:' .. hm
end

-- Loads the aggregate of hm if it is valid for window W. One kept for
-- another window is dropped (with its pending set) when `drop` is set.
local function sagg_get(base, hm, W, drop)
    local agg = sagg_load(sagg_key(base, hm))
    if agg and agg.W ~= W then
        if drop then
            redis.call('DEL', sagg_key(base, hm), base .. ':sp:' .. hm)
        end
        return nil
    end
    return agg
end

-- Score aggregates of hm as of I: the reply piece. Moves the cursor (and
-- creates it) when commit is set; a query behind the cursor scans.
-- `agg` may be passed in already loaded (by put_score, in the same call),
-- and `shadow` as shadowed(base, I, W) or false (one lookup for a group).
local function score_stats(base, hm, I, W, commit, agg, shadow)
    if shadow == nil then
        shadow = shadowed(base, I, W)
    end
    if shadow then
        return sagg_reply((sagg_scan(base, hm, I, W, shadow)))
    end
    if agg == nil then
        agg = sagg_get(base, hm, W, commit)
    end
    if agg == nil or I < agg.T then
        local fresh, pend = sagg_scan(base, hm, I, W)
        if commit and agg == nil then
            local sp = base .. ':sp:' .. hm
            redis.call('DEL', sp)
            for i = 1, #pend do
                redis.call('ZADD', sp, pend[i][1], pend[i][2])
            end
            fresh.pn = #pend
            sagg_save(sagg_key(base, hm), fresh)
        end
        return sagg_reply(fresh)
    end
    if I > agg.T then
        sagg_advance(base, hm, agg, I, commit)
        if commit then
            sagg_save(sagg_key(base, hm), agg)
        end
    end
    return sagg_reply(agg)
end

-- Writes the scored pair of (horizon|model) for a bucket, one member per
-- bucket: "<bucket>|<observed_at>|<prediction>|<actual>", and keeps the
-- cursor's aggregate in step when the bucket is at or before the cursor.
-- Returns that aggregate as it now is (nil when there is none).
local function put_score(base, hm, bucket, observed_at, prediction, actual, W)
    local key = base .. ':sc:' .. hm
    local old = redis.call('ZRANGEBYSCORE', key, bucket, bucket)
    redis.call('ZREMRANGEBYSCORE', key, bucket, bucket)
    redis.call('ZADD', key, bucket,
               bucket .. '|' .. observed_at .. '|' .. prediction .. '|' .. actual)

    local agg = sagg_get(base, hm, W, true)
    if not agg or bucket <= agg.T - W or bucket > agg.T then
        return agg
    end
    local T, sp = agg.T, base .. ':sp:' .. hm
    if #old > 0 then
        local _, o, p, a = parse_score(old[1])
        if o <= T then
            sagg_point(agg, p, a, -1)
        else
            agg.pn = agg.pn - redis.call('ZREM', sp, bucket)
        end
    end
    if tonumber(observed_at) <= T then
        sagg_point(agg, prediction, actual, 1)
    else
        agg.pn = agg.pn + redis.call('ZADD', sp, observed_at, bucket)
    end
    sagg_save(sagg_key(base, hm), agg)
    return agg
end

