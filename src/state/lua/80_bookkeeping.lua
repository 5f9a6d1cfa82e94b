-- Dead-letter bookkeeping and snapshot release.
-- Part of the chorus library: src/state/lua/*.lua are concatenated in
-- name order at build (cmake/assemble_lua.cmake).

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
-- Drops the snapshots (forecasts, and alerts: base:osnap) of records up to
-- `offset` of that input partition:
-- their outputs are committed, so they will not be processed again.
--
local function release(keys, args)
    redis.call('ZREMRANGEBYSCORE', keys[1] .. ':osnap:' .. args[1], '-inf', args[2])
    return redis.call('ZREMRANGEBYSCORE', keys[1] .. ':snap:' .. args[1], '-inf', args[2])
end
