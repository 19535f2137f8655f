/**
 * @module The Redis 7 function library keepsake writes through. One FCALL per write keeps a
 * persist at one round trip, touches one key (Redis Cluster safe) and publishes the change notice
 * in the same atomic step.
 *
 * Session hash layout: `d:<key>` data fields (msgpack bytes), `f:<key>` flash values, and
 * metadata `m:c` (created at, ms), `m:a` (anonymous tag), `m:u` (user id). User keys can never
 * reach `m:` because every data field is namespaced.
 */

export const LIBRARY_NAME = 'keepsake_v1';

/** Field-name prefixes inside a session hash. */
export const FIELD = { data: 'd:', flash: 'f:', created: 'm:c', anon: 'm:a', user: 'm:u' } as const;

/** Result codes of keepsake_write. */
export const WRITE_OK = 1;
export const WRITE_CONFLICT = 0;
export const WRITE_GONE = -1;
export const WRITE_TOO_LARGE = -2;

export const LIBRARY_SOURCE = `#!lua name=${LIBRARY_NAME}

local function counts(field)
  local p = string.sub(field, 1, 2)
  return p == 'd:' or p == 'f:'
end

-- keepsake_write KEYS[1]=session hash
-- ARGV: ttl_ms, create(0|1), max_bytes(0=none), clear(0|1), channel(''=none), notice,
--       cas_field(''=none), cas_sha(''=expect absent), nset, field1, value1, ..., then fields to delete
-- Returns {1} ok | {0, current} compare-and-set lost | {-1} session gone | {-2, bytes} too large
redis.register_function('keepsake_write', function(keys, args)
  local key = keys[1]
  if args[2] ~= '1' and redis.call('EXISTS', key) == 0 then return {-1} end
  local cas_field = args[7]
  if cas_field ~= '' then
    local current = redis.call('HGET', key, cas_field)
    local expected = args[8]
    if (current == false and expected ~= '') or (current ~= false and redis.sha1hex(current) ~= expected) then
      return {0, current}
    end
  end
  local nset = tonumber(args[9])
  local first_del = 10 + 2 * nset
  local clear = args[4] == '1'
  local max_bytes = tonumber(args[3])
  if max_bytes > 0 then
    local touched = {}
    local total = 0
    for i = 10, first_del - 1, 2 do
      touched[args[i]] = true
      if counts(args[i]) then total = total + string.len(args[i + 1]) end
    end
    for i = first_del, #args do touched[args[i]] = true end
    if not clear then
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if counts(field) and not touched[field] then total = total + redis.call('HSTRLEN', key, field) end
      end
    end
    if total > max_bytes then return {-2, total} end
  end
  if clear then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if counts(field) then redis.call('HDEL', key, field) end
    end
  end
  if nset > 0 then redis.call('HSET', key, unpack(args, 10, first_del - 1)) end
  if first_del <= #args then redis.call('HDEL', key, unpack(args, first_del, #args)) end
  redis.call('PEXPIRE', key, args[1])
  if args[5] ~= '' then redis.call('PUBLISH', args[5], args[6]) end
  return {1}
end)

-- keepsake_rename KEYS[1]=old hash, KEYS[2]=new hash (same slot on a cluster)
-- ARGV: ttl_ms, channel, notice. Returns 1, or 0 when the old session is gone.
redis.register_function('keepsake_rename', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return 0 end
  redis.call('RENAME', keys[1], keys[2])
  redis.call('PEXPIRE', keys[2], args[1])
  if args[2] ~= '' then redis.call('PUBLISH', args[2], args[3]) end
  return 1
end)

-- keepsake_destroy KEYS[1]=session hash; ARGV: channel, notice. Returns 1 if it existed.
redis.register_function('keepsake_destroy', function(keys, args)
  local existed = redis.call('DEL', keys[1])
  if args[1] ~= '' then redis.call('PUBLISH', args[1], args[2]) end
  return existed
end)
`;
