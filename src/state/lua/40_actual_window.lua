-- The actual aggregate per series, for the z-guard (SPEC §5.2).
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

-- ------------------------------------------------------------------ --
-- Actual aggregate: per series, for the z-guard (SPEC §5.2)            --
-- ------------------------------------------------------------------ --
-- n, Σv, Σv² (exact squares), the latest visible actual, and over the
-- consecutive differences d = v_i - v_{i-1} of the visible actuals in
-- bucket order: their count, Σd, Σd² and the distribution of the bucket
-- spacings (spacing -> count). Moving the set by one element needs its
-- neighbours in the set, found by walking base:act past the buckets that
-- are not in it (usually none).

local function aagg_new(W, T)
    return {W = W, T = T, n = 0, big = 0, s1 = {}, s2 = {}, last_b = 0, last_v = 0, nd = 0,
            dbig = 0, d1 = {}, d2 = {}, hist = {}, pn = 0}
end

local function aagg_load(base)
    local s = redis.call('GET', base .. ':aa')
    if not s then
        return nil
    end
    local t = unpack_doubles(s)
    if not t or t[1] ~= AGG_VERSION then
        return nil
    end
    local agg = {W = t[2], T = t[3], n = t[4], big = t[5], last_b = t[6], last_v = t[7],
                 nd = t[8], dbig = t[9], pn = t[10], hist = {}}
    local i = 11
    agg.s1, i = get_list(t, i)
    agg.s2, i = get_list(t, i)
    agg.d1, i = get_list(t, i)
    agg.d2, i = get_list(t, i)
    local h
    h, i = get_list(t, i)
    for j = 1, #h, 2 do
        agg.hist[h[j]] = h[j + 1]
    end
    return agg
end

local function hist_sorted(hist)
    local keys = {}
    for k in pairs(hist) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    return keys
end

local function aagg_save(base, agg)
    local t = {AGG_VERSION, agg.W, agg.T, agg.n, agg.big, agg.last_b, agg.last_v, agg.nd,
               agg.dbig, agg.pn}
    put_list(t, agg.s1)
    put_list(t, agg.s2)
    put_list(t, agg.d1)
    put_list(t, agg.d2)
    local keys, h = hist_sorted(agg.hist), {}
    for i = 1, #keys do
        h[#h + 1] = keys[i]
        h[#h + 1] = agg.hist[keys[i]]
    end
    put_list(t, h)
    redis.call('SET', base .. ':aa', pack_doubles(t))
end

local function aagg_value(agg, v, sign)
    agg.n = agg.n + sign
    if math.abs(v) < BIG_VALUE then
        if v ~= 0 then
            xadd(agg.s1, sign * v)
            xadd_square(agg.s2, v, sign)
        end
    else
        agg.big = agg.big + sign
    end
end

-- The pair (b1, v1) -> (b2, v2) of consecutive actuals, b1 < b2.
local function aagg_diff(agg, b1, v1, b2, v2, sign)
    local d = v2 - v1
    agg.nd = agg.nd + sign
    if math.abs(d) < BIG_VALUE then
        if d ~= 0 then
            xadd(agg.d1, sign * d)
            xadd_square(agg.d2, d, sign)
        end
    else
        agg.dbig = agg.dbig + sign
    end
    local s = b2 - b1
    local c = (agg.hist[s] or 0) + sign
    if c == 0 then
        agg.hist[s] = nil
    else
        agg.hist[s] = c
    end
end

local function aagg_append(agg, b, v)
    if agg.n > 0 then
        aagg_diff(agg, agg.last_b, agg.last_v, b, v, 1)
    end
    aagg_value(agg, v, 1)
    agg.last_b, agg.last_v = b, v
end

-- The nearest member of the set after bucket b, up to `hi`: walks
-- base:act from b, skipping buckets for which inset(bucket, observed_at)
-- is false. Returns bucket, value or nil.
local function act_next(base, b, hi, inset)
    while true do
        local m = redis.call('ZRANGEBYSCORE', base .. ':act', '(' .. b, hi, 'LIMIT', 0, 8)
        for i = 1, #m do
            local eb, eo, ev = parse_act(m[i])
            if inset(eb, eo) then
                return eb, tonumber(ev)
            end
            b = eb
        end
        if #m < 8 then
            return nil
        end
    end
end

-- The nearest member before bucket b, down to `lo` (exclusive).
local function act_prev(base, b, lo, inset)
    while true do
        local m = redis.call('ZREVRANGEBYSCORE', base .. ':act', '(' .. b, '(' .. lo, 'LIMIT', 0, 8)
        for i = 1, #m do
            local eb, eo, ev = parse_act(m[i])
            if inset(eb, eo) then
                return eb, tonumber(ev)
            end
            b = eb
        end
        if #m < 8 then
            return nil
        end
    end
end

-- Takes (b, v) out of the set, or puts it in: the set's members lie in
-- (lo, hi] and satisfy inset; b itself is skipped by the walks.
local function aagg_remove(base, agg, b, v, lo, hi, inset)
    local pb, pv = act_prev(base, b, lo, inset)
    local nb, nv = act_next(base, b, hi, inset)
    aagg_value(agg, v, -1)
    if pb then
        aagg_diff(agg, pb, pv, b, v, -1)
    end
    if nb then
        aagg_diff(agg, b, v, nb, nv, -1)
        if pb then
            aagg_diff(agg, pb, pv, nb, nv, 1)
        end
    else
        agg.last_b, agg.last_v = pb or 0, pv or 0
    end
end

local function aagg_insert(base, agg, b, v, lo, hi, inset)
    local pb, pv = act_prev(base, b, lo, inset)
    local nb, nv = act_next(base, b, hi, inset)
    aagg_value(agg, v, 1)
    if pb then
        aagg_diff(agg, pb, pv, b, v, 1)
    end
    if nb then
        aagg_diff(agg, b, v, nb, nv, 1)
        if pb then
            aagg_diff(agg, pb, pv, nb, nv, -1)
        end
    else
        agg.last_b, agg.last_v = b, v
    end
end

local function aagg_scan(base, I, W, shadow)
    local agg, pend = aagg_new(W, I), {}
    local m = redis.call('ZRANGEBYSCORE', base .. ':act', '(' .. (I - W), I)
    for i = 1, #m do
        local b, o, v = parse_act(m[i])
        if o <= I then
            aagg_append(agg, b, tonumber(v))
        elseif shadow and shadow[b] then
            aagg_append(agg, b, tonumber(shadow[b]))
        else
            pend[#pend + 1] = {o, b}
        end
    end
    return agg, pend
end

-- Removes the members visible at agg.T with bucket in (T - W, upto]: a
-- prefix of the set. The pairs inside it and the pair from its last member
-- to the first member after it go too; one ranged read finds both (8 at a
-- time, usually one round).
local function aagg_drop_front(base, agg, upto)
    local T = agg.T
    local from = '(' .. (T - agg.W)
    local fb, fv
    while true do
        local m = redis.call('ZRANGEBYSCORE', base .. ':act', from, T, 'LIMIT', 0, 8)
        for i = 1, #m do
            local b, o, v = parse_act(m[i])
            if o <= T then
                v = tonumber(v)
                if b > upto then
                    if fb then
                        aagg_diff(agg, fb, fv, b, v, -1)
                    end
                    return
                end
                if fb then
                    aagg_diff(agg, fb, fv, b, v, -1)
                end
                aagg_value(agg, v, -1)
                fb, fv = b, v
            end
            from = '(' .. b
        end
        if #m < 8 then
            break
        end
    end
    -- Nothing of the set is left after the prefix.
    if fb then
        agg.last_b, agg.last_v = 0, 0
    end
end

-- Moves the series' cursor forward from agg.T to I > agg.T (see
-- sagg_advance for commit).
local function aagg_advance(base, agg, I, commit)
    local T, W = agg.T, agg.W
    local L = I - W
    local ap = base .. ':ap'
    if L >= T then
        local fresh = aagg_new(W, T)
        for k, v in pairs(fresh) do
            agg[k] = v
        end
        if commit then
            redis.call('DEL', ap)
        end
    elseif agg.pn == 0 then
        aagg_drop_front(base, agg, L)
    else
        aagg_drop_front(base, agg, L)
        local pend = redis.call('ZRANGEBYSCORE', ap, '-inf', I)
        local inserted = {}
        local inset = function(eb, eo)
            return eo <= T or inserted[eb]
        end
        for i = 1, #pend do
            local b = tonumber(pend[i])
            if b > L then
                local e = redis.call('ZRANGEBYSCORE', base .. ':act', b, b)
                if #e > 0 then
                    local _, o, v = parse_act(e[1])
                    if o > T and o <= I then
                        aagg_insert(base, agg, b, tonumber(v), L, T, inset)
                        inserted[b] = true
                    end
                end
            end
        end
        if commit and #pend > 0 then
            agg.pn = agg.pn - redis.call('ZREMRANGEBYSCORE', ap, '-inf', I)
        end
    end
    local m = redis.call('ZRANGEBYSCORE', base .. ':act', '(' .. math.max(T, L), I)
    for i = 1, #m do
        local b, o, v = parse_act(m[i])
        if o <= I then
            aagg_append(agg, b, tonumber(v))
        elseif commit then
            agg.pn = agg.pn + redis.call('ZADD', ap, o, b)
        end
    end
    agg.T = I
end

local function aagg_get(base, W, drop)
    local agg = aagg_load(base)
    if agg and agg.W ~= W then
        if drop then
            redis.call('DEL', base .. ':aa', base .. ':ap')
        end
        return nil
    end
    return agg
end

-- An exact sum as its canonical components (xcanon), or {+inf}. The
-- first is the correctly rounded sum; the worker computes the centred sums
-- of squares n·Σx² − (Σx)² exactly from them, with fma, far faster than
-- Lua could.
local function components(p, big)
    if big > 0 then
        return {bin(math.huge)}
    end
    local c = xcanon(p)
    for i = 1, #c do
        c[i] = bin(c[i])
    end
    return c
end

-- {n, last_bucket, last_value, Σv, Σv², n_d, Σd, Σd², {spacing, count, ...}},
-- each sum as its components: what the worker computes the z-guard from.
local function aagg_reply(agg)
    local keys, h = hist_sorted(agg.hist), {}
    for i = 1, #keys do
        h[#h + 1] = keys[i]
        h[#h + 1] = agg.hist[keys[i]]
    end
    return {agg.n, agg.last_b, bin(agg.last_v), components(agg.s1, agg.big),
            components(agg.s2, agg.big), agg.nd, components(agg.d1, agg.dbig),
            components(agg.d2, agg.dbig), h}
end

local function actual_stats(base, I, W, commit, shadow)
    if shadow == nil then
        shadow = shadowed(base, I, W)
    end
    if shadow then
        return aagg_reply((aagg_scan(base, I, W, shadow)))
    end
    local agg = aagg_get(base, W, commit)
    if agg == nil or I < agg.T then
        local fresh, pend = aagg_scan(base, I, W)
        if commit and agg == nil then
            local ap = base .. ':ap'
            redis.call('DEL', ap)
            for i = 1, #pend do
                redis.call('ZADD', ap, pend[i][1], pend[i][2])
            end
            fresh.pn = #pend
            aagg_save(base, fresh)
        end
        return aagg_reply(fresh)
    end
    if I > agg.T then
        aagg_advance(base, agg, I, commit)
        if commit then
            aagg_save(base, agg)
        end
    end
    return aagg_reply(agg)
end

-- A new winning actual (b, obs, v) replaced (old_obs, old_v) (or nothing):
-- keeps the series' cursor in step when b is at or before it.
local function aagg_put(base, b, old_obs, old_v, obs, v, W)
    local agg = aagg_get(base, W, true)
    if not agg or b <= agg.T - W or b > agg.T then
        return
    end
    local T, ap = agg.T, base .. ':ap'
    local inset = function(_, eo)
        return eo <= T
    end
    if old_obs then
        if old_obs <= T then
            aagg_remove(base, agg, b, tonumber(old_v), T - W, T, inset)
        else
            agg.pn = agg.pn - redis.call('ZREM', ap, b)
        end
    end
    if obs <= T then
        aagg_insert(base, agg, b, tonumber(v), T - W, T, inset)
    else
        agg.pn = agg.pn + redis.call('ZADD', ap, obs, b)
    end
    aagg_save(base, agg)
end

