-- Exact sums (Shewchuk partials) and the packing of aggregates.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

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

