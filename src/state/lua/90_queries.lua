-- Read-only queries (reports, demo) and chorus_debug_check.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

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

