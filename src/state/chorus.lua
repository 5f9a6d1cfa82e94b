#!lua name=chorus
--
-- Chorus state functions (Redis 7 Functions).
--
-- Every state change of a series happens in one of these functions, so it
-- is atomic whichever worker runs it. KEYS[1] is the series' base key,
-- "<prefix>:{<series>}"; every key below is derived from it and therefore
-- shares the series' Cluster hash tag and slot. The key layout is
-- documented in docs/redis-keys.md; keep the two in step.
--
-- Invariants:
--  * Upserts are keyed by business keys (bucket, horizon, model), never
--    blind increments driven by arrival: re-applying a record is a no-op.
--  * base:wm holds, per input topic-partition, the last offset applied for
--    this series. A record at or below it is reported as "replayed" and
--    changes nothing, which makes the arrival-order tie-break (a tie on
--    issued_at or observed_at goes to the later arrival) replay-safe.
--  * Fencing: every write call carries its partition's epoch (taken by the
--    worker with INCR when the partition was assigned to it). base:wm keeps
--    the newest epoch seen per partition ("e|<topic>|<partition>"); a call
--    with an older one is answered "fenced" before anything is read or
--    written, so a zombie that lost the partition cannot interleave with
--    the new owner (SPEC §9.1).
--  * Trimming (SPEC §9.2) is measured from the series' watermark, the older
--    of its actuals' (base:aw) and predictions' (base:pw) watermarks, and
--    only once the series has both: a held or not-yet-read prediction has
--    issued_at >= base:pw (a stream is in one partition, in order), and its
--    window needs nothing before issued_at - window >= pw - retention.
--  * Numbers that are values (predictions, actuals) are stored as the exact
--    strings the worker sent ("%.17g"); numbers computed here (sums, their
--    components, the latest actual of an aggregate) are returned as 8
--    little-endian bytes (struct.pack '<d'): the same bits, without
--    formatting in Lua or strtod in the worker. +inf stands for a sum with a
--    term too large to sum. Times are integer
--    milliseconds, exact in Lua's doubles up to 2^53.
--  * Validation happens in the worker before any call, and a function does
--    its reads that can fail before its first write: Lua never rolls back.
--  * An applied prediction leaves a snapshot of what its forecast is
--    computed from (base:snap:<topic>|<partition>, by offset) until the
--    worker has committed its output (chorus_release). A re-delivered
--    record that still has a snapshot is answered "reemit" with exactly
--    that snapshot, so the output of a batch whose transaction never
--    committed is re-created bit for bit, whatever happened since.
--
-- Window aggregates (issue #4: the cost of a record must not grow with the
-- window). "As of I" a window holds the buckets with I - W < bucket <= I
-- whose winning actual has observed_at <= I (SPEC §1, §4). Writing
-- vis = max(bucket, observed_at), that is: bucket > I - W and vis <= I.
--  * Each (series, horizon, model) keeps its score aggregate as of a cursor
--    T (base:sa:<h>|<m>), and the series keeps its actual aggregate as of
--    its own cursor (base:aa). Moving a cursor forward from T to I only
--    touches the points that leave ((T - W, I - W], visible at T) and the
--    points that become visible (vis in (T, I]): buckets in (T, I] read in
--    bucket order, plus the few buckets <= T whose winning actual is not
--    visible yet, which wait in a pending set scored by vis
--    (base:sp:<h>|<m>, base:ap; invariant: it holds every bucket in
--    (T - W, T] with vis > T, and possibly stale buckets <= T - W, which
--    are ignored; the aggregate counts the set's members, so an empty set
--    costs no query). A query behind the cursor (I < T) scans the window.
--  * Every sum is exact: a list of non-overlapping partials (Shewchuk's
--    msum, as in Python's math.fsum), to which a removal adds -x. What a
--    reply carries is the exact sum correctly rounded (scores) or its
--    canonical components (actuals), which depend only on the set of
--    terms, so the cursor path, the scan and every arrival order give the
--    same bits. chorus_debug_check compares an aggregate with a scan; the
--    tests run it.
--  * A change to a point at or before a cursor (a revised prediction, a new
--    winning actual, retention trimming) adjusts that cursor's aggregate
--    in the same call: subtract the old point if it was included, add the
--    new one if it is visible, or move it to/from the pending set.

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

-- ------------------------------------------------------------------ --
-- Exact sums                                                          --
-- ------------------------------------------------------------------ --

-- A term at or above BIG_TERM (or NaN) is counted, not summed: the sum is
-- reported as +inf. Below it, sums of up to 2^60 terms cannot overflow, so
-- the partials stay exact. BIG_VALUE bounds values and differences whose
-- exact squares are summed (squares < 2^800, so that the worker's products
-- of these sums stay finite too).
local BIG_TERM = 2 ^ 960
local BIG_VALUE = 2 ^ 400
local SPLIT = 134217729 -- 2^27 + 1, Veltkamp's splitter
local AGG_VERSION = 1

-- p += x, exactly: p is a list of non-overlapping partials in increasing
-- magnitude (Shewchuk; CPython's math.fsum inner loop). Zeros are never kept.
local function xadd(p, x)
    local n, i = #p, 0
    for j = 1, n do
        local y = p[j]
        if math.abs(x) < math.abs(y) then
            x, y = y, x
        end
        local hi = x + y
        local lo = y - (hi - x)
        if lo ~= 0 then
            i = i + 1
            p[i] = lo
        end
        x = hi
    end
    if x ~= 0 then
        i = i + 1
        p[i] = x
    end
    for j = i + 1, n do
        p[j] = nil
    end
end

-- The exact value of p, correctly rounded (CPython's math.fsum final step,
-- including its correction for half-way cases across partials).
local function xround(p)
    local n = #p
    if n == 0 then
        return 0.0
    end
    local hi = p[n]
    local lo = 0
    n = n - 1
    while n > 0 do
        local x, y = hi, p[n]
        n = n - 1
        hi = x + y
        lo = y - (hi - x)
        if lo ~= 0 then
            break
        end
    end
    if n > 0 and ((lo < 0 and p[n] < 0) or (lo > 0 and p[n] > 0)) then
        local y = lo * 2
        local x = hi + y
        if y == x - hi then
            hi = x
        end
    end
    return hi
end

-- The exact value of p as a canonical list, largest first: r1 = round(p),
-- r2 = round(p - r1), ... Partials lists of equal value may differ; this
-- does not, so replies (and products computed from them) are the same
-- bits whatever the history.
local function xcanon(p)
    local q, out = {}, {}
    for i = 1, #p do
        q[i] = p[i]
    end
    while #q > 0 do
        local r = xround(q)
        out[#out + 1] = r
        xadd(q, -r)
    end
    return out
end

-- a*b = p + e exactly (Dekker), for |a|, |b| well inside the range.
local function two_prod(a, b)
    local p = a * b
    local c = SPLIT * a
    local ah = c - (c - a)
    local al = a - ah
    c = SPLIT * b
    local bh = c - (c - b)
    local bl = b - bh
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)
end

-- q += sign * x*x, exactly.
local function xadd_square(q, x, sign)
    local h, l = two_prod(x, x)
    xadd(q, sign * h)
    if l ~= 0 then
        xadd(q, sign * l)
    end
end

-- ------------------------------------------------------------------ --
-- Packing: an aggregate is one string of little-endian doubles         --
-- ------------------------------------------------------------------ --

local function pack_doubles(t)
    return struct.pack('<' .. string.rep('d', #t), unpack(t))
end

-- nil for a string that cannot be an aggregate (then it is rebuilt by a
-- scan, never trusted), so that a bad value cannot fail a call half-way.
local function unpack_doubles(s)
    if #s < 16 or #s % 8 ~= 0 then
        return nil
    end
    local n = #s / 8
    local t = {struct.unpack('<' .. string.rep('d', n), s)}
    t[n + 1] = nil -- struct.unpack also returns the next position
    return t
end

local function put_list(t, p)
    t[#t + 1] = #p
    for i = 1, #p do
        t[#t + 1] = p[i]
    end
end

-- Reads a count-prefixed list at t[i]; returns it and the next index.
local function get_list(t, i)
    local n, p = t[i], {}
    for j = 1, n do
        p[j] = t[i + j]
    end
    return p, i + n + 1
end

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
local function shadowed(base, I, W)
    local out
    local buckets = redis.call('ZRANGEBYSCORE', base .. ':multi', '(' .. (I - W), I)
    for i = 1, #buckets do
        local b = tonumber(buckets[i])
        local wobs = winning_actual(base, b)
        if wobs and wobs > I then
            local best_o, best_v
            local m = redis.call('ZRANGEBYSCORE', base .. ':actv', b, b)
            for j = 1, #m do
                local _, o, v = parse_act(m[j])
                if o <= I and (best_o == nil or o > best_o) then
                    best_o, best_v = o, v
                end
            end
            if best_o then
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
local function trim(base, retention, W, wm)
    if not wm.aw or not wm.pw then
        return
    end
    local cut = math.floor((math.min(wm.aw, wm.pw) - retention) / DAY_MS) * DAY_MS -- buckets < cut go
    if wm.tc and cut <= wm.tc then
        return
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

--
-- chorus_actual KEYS[1]=base
--   ARGV: wm_field, offset, bucket, observed_at, value, retention_ms, window_ms,
--         epoch
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

    if observed_at > newest then
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
    trim(base, retention, window, wm)
    return {'applied', newest}
end

--
-- chorus_prediction KEYS[1]=base
--   ARGV: wm_field, offset, batch_id, force, horizon, model, bucket,
--         issued_at, value, record, window_ms, retention_ms, want_expected,
--         epoch, committed_batches
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
--    {expected model, ...}}
--   Models and expected models are sorted; every aggregate is as of asof.
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
    local reply = {'applied', revision, asof, models, stats,
                   actual_stats(base, asof, window, true, shadow), expected}
    -- The offset prefix keeps members unique even if two replies are equal.
    redis.call('ZADD', snap_key, offset, offset .. '|' .. batch_id .. '|' .. cmsgpack.pack(reply))
    trim(base, retention, window, wm)
    return reply
end

--
-- Dead letters have no business key to upsert, so a record re-read after its
-- dead letter committed (a rebalance re-reads from a held prediction's
-- offset) must be recognised here. KEYS[1] is "<prefix>:dlq:{<topic>|<partition>}",
-- a set of offsets whose dead letters are committed.
--
-- chorus_dead_letter_seen KEYS[1]  ARGV: offset  -> 'seen' or 'new'
local function dead_letter_seen(keys, args)
    if redis.call('ZSCORE', keys[1], args[1]) then
        return 'seen'
    end
    return 'new'
end

-- chorus_dead_letter_done KEYS[1]  ARGV: committed_offset, offset...
-- Records committed dead letters. Offsets below the partition's committed
-- offset are never read again, so they are dropped.
local function dead_letter_done(keys, args)
    for i = 2, #args do
        redis.call('ZADD', keys[1], args[i], args[i])
    end
    return redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', '(' .. args[1])
end

--
-- chorus_release KEYS[1]=base  ARGV: wm_field, offset
-- Drops the snapshots of records up to `offset` of that input partition:
-- their outputs are committed, so they will not be processed again.
--
local function release(keys, args)
    return redis.call('ZREMRANGEBYSCORE', keys[1] .. ':snap:' .. args[1], '-inf', args[2])
end

--
-- chorus_model_stats KEYS[1]=base  ARGV: horizon, model, asof, window_ms
-- Reply: {n_se, Σse, n_ape, Σape} as of `asof`; used by reports and the
-- demo. Read-only: it reads the cursor (moving a copy forward) or scans.
--
local function model_stats(keys, args)
    return score_stats(keys[1], args[1] .. '|' .. args[2], tonumber(args[3]), tonumber(args[4]),
                       false)
end

--
-- chorus_window_stats KEYS[1]=base  ARGV: asof, window_ms, horizon, model...
-- Reply: {{score reply per model}, actual reply}, as chorus_prediction
-- computes them, read-only. For tests and tools.
--
local function window_stats(keys, args)
    local asof, window, stats = tonumber(args[1]), tonumber(args[2]), {}
    for i = 4, #args do
        stats[#stats + 1] = score_stats(keys[1], args[3] .. '|' .. args[i], asof, window, false)
    end
    return {stats, actual_stats(keys[1], asof, window, false)}
end

-- Whether a partials list is well formed: non-zero, strictly increasing
-- in magnitude.
local function partials_ok(p)
    for i = 1, #p do
        if p[i] == 0 or p[i] ~= p[i] or (i > 1 and math.abs(p[i - 1]) >= math.abs(p[i])) then
            return false
        end
    end
    return true
end

local function same(a, b)
    if type(a) ~= type(b) then
        return false
    end
    if type(a) ~= 'table' then
        return a == b
    end
    if #a ~= #b then
        return false
    end
    for i = 1, #a do
        if not same(a[i], b[i]) then
            return false
        end
    end
    return true
end

local function show(x)
    if type(x) ~= 'table' then
        return tostring(x)
    end
    local parts = {}
    for i = 1, #x do
        parts[i] = show(x[i])
    end
    return '{' .. table.concat(parts, ',') .. '}'
end

-- The pending set holds exactly the window's invisible buckets, scored by
-- observed_at (stale members at or below T - W are allowed), and the
-- aggregate knows how many members it has.
local function check_pending(key, T, W, pn, pend, what, problems)
    local want = {}
    for i = 1, #pend do
        want[pend[i][2]] = pend[i][1]
    end
    local got = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    if pn ~= #got / 2 then
        problems[#problems + 1] = what .. ': pending count ' .. pn .. ', set has ' .. #got / 2
    end
    local seen = 0
    for i = 1, #got, 2 do
        local b, s = tonumber(got[i]), tonumber(got[i + 1])
        if b > T - W then
            if want[b] ~= s then
                problems[#problems + 1] = what .. ': pending ' .. got[i] .. ' score ' .. got[i + 1]
                                              .. ' want ' .. tostring(want[b])
            else
                seen = seen + 1
            end
        end
    end
    if seen ~= #pend then
        problems[#problems + 1] = what .. ': pending has ' .. seen .. ' of ' .. #pend
    end
end

--
-- chorus_debug_check KEYS[1]=base  ARGV: horizon|model ...
-- Consistency check for tests: every cursor aggregate of the series (the
-- series' and those of the horizon|model pairs named) must equal a scan of
-- its window at its cursor, and its pending set must be exact.
-- Reply: {'ok'} or {'mismatch', description, ...}.
--
local function debug_check(keys, args)
    local base, problems = keys[1], {}
    local agg = aagg_load(base)
    if agg then
        local fresh, pend = aagg_scan(base, agg.T, agg.W)
        local got, want = aagg_reply(agg), aagg_reply(fresh)
        if not same(got, want) then
            problems[#problems + 1] = 'actuals at ' .. agg.T .. ': ' .. show(got) .. ' want '
                                          .. show(want)
        end
        if agg.n ~= fresh.n or agg.big ~= fresh.big or agg.nd ~= fresh.nd
            or agg.dbig ~= fresh.dbig or agg.nd ~= math.max(agg.n - 1, 0) then
            problems[#problems + 1] = 'actuals: counts'
        end
        for _, p in ipairs({agg.s1, agg.s2, agg.d1, agg.d2}) do
            if not partials_ok(p) then
                problems[#problems + 1] = 'actuals: partials ' .. show(p)
            end
        end
        check_pending(base .. ':ap', agg.T, agg.W, agg.pn, pend, 'actuals', problems)
    end
    for i = 1, #args do
        local hm = args[i]
        local sagg = sagg_load(sagg_key(base, hm))
        if sagg then
            local fresh, pend = sagg_scan(base, hm, sagg.T, sagg.W)
            local got, want = sagg_reply(sagg), sagg_reply(fresh)
            if not same(got, want) or sagg.big_se ~= fresh.big_se
                or sagg.big_ape ~= fresh.big_ape then
                problems[#problems + 1] = hm .. ' at ' .. sagg.T .. ': ' .. show(got) .. ' want '
                                              .. show(want)
            end
            if not partials_ok(sagg.se) or not partials_ok(sagg.ape) then
                problems[#problems + 1] = hm .. ': partials'
            end
            check_pending(base .. ':sp:' .. hm, sagg.T, sagg.W, sagg.pn, pend, hm, problems)
        end
    end
    if #problems == 0 then
        return {'ok'}
    end
    table.insert(problems, 1, 'mismatch')
    return problems
end

redis.register_function('chorus_actual', actual)
redis.register_function('chorus_prediction', prediction)
redis.register_function('chorus_release', release)
redis.register_function{function_name = 'chorus_dead_letter_seen', callback = dead_letter_seen,
                        flags = {'no-writes'}}
redis.register_function('chorus_dead_letter_done', dead_letter_done)
redis.register_function{function_name = 'chorus_model_stats', callback = model_stats,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'chorus_window_stats', callback = window_stats,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'chorus_debug_check', callback = debug_check,
                        flags = {'no-writes'}}
