/**
 * @module The Redis 7 function library keepsake writes through. One FCALL per write keeps a
 * persist at one round trip, touches one key (Redis Cluster safe) and publishes the change notice
 * in the same atomic step.
 *
 * Session hash layout: `d:<key>` data fields (msgpack bytes), `f:<key>` flash values, and
 * metadata `m:c` (created at, ms), `m:a` (anonymous tag), `m:u` (user id), `m:s` (bytes of the d:
 * and f: fields, kept by the write function). User keys can never reach `m:` because every data
 * field is namespaced.
 */

import { ID_LENGTH } from '../session/session-id.js';

export const LIBRARY_NAME = 'keepsake_v2';

/** Function names of the library (unique across every library loaded on the server). */
export const FUNCTION = { load: 'ks2_l', write: 'ks2_w', rename: 'ks2_rename', destroy: 'ks2_destroy' } as const;

/**
 * Field-name prefixes inside a session hash. `m:s` is the byte count of the d: and f: fields,
 * `m:v` a version every write bumps (absent until the first write of data).
 */
export const FIELD = { data: 'd:', flash: 'f:', created: 'm:c', anon: 'm:a', user: 'm:u', size: 'm:s', version: 'm:v' } as const;

/**
 * Sessions whose d: and f: fields hold more bytes than this are not sent through Lua (copying a
 * large reply through a script costs Redis several times a plain HGETALL): the load function
 * answers with their version, and the store uses its copy or reads them with HGETALL.
 */
export const LARGE_SESSION_BYTES = 8192;

/** The load function's answer for a large session: `[LOAD_LARGE, m:v, m:c, m:a, m:u]`. */
export const LOAD_LARGE = 1;

/** Result codes of the write function. */
export const WRITE_OK = 1;
export const WRITE_CONFLICT = 0;
export const WRITE_GONE = -1;
export const WRITE_TOO_LARGE = -2;

/**
 * The first argument of a write: `<max_bytes>` (0 = no limit), then, in this order and each only
 * when needed: `t<ttl_ms>` refresh the TTL, `c` create (do not require the session to exist),
 * `x` clear every data and flash field first, `k` compare-and-set (the next two arguments are the
 * field and the SHA-1 of the bytes it must hold, '' = absent), `d<n>` the last n arguments are
 * fields to delete.
 */
export function writeHeader(options: { maxBytes: string; ttlMs?: string | undefined; create?: boolean; clear?: boolean; compare?: boolean; deletes?: number }): string {
  let header = options.maxBytes;
  if (options.ttlMs !== undefined) header += `t${options.ttlMs}`;
  if (options.create) header += 'c';
  if (options.clear) header += 'x';
  if (options.compare) header += 'k';
  if (options.deletes) header += `d${options.deletes}`;
  return header;
}

// Every argument is sent with every write, so the hot function has a short name and one compact
// header, and the notice channel and text are derived from the key (prefix + 43-character id).
export const LIBRARY_SOURCE = `#!lua name=${LIBRARY_NAME}

local ID_LENGTH = ${ID_LENGTH}
local LARGE = ${LARGE_SESSION_BYTES}

-- A d: or f: field (byte compare: no substring made).
local function counted(field)
  local a, b = string.byte(field, 1, 2)
  return b == 58 and (a == 100 or a == 102)
end

-- Bytes of every d: and f: field: a hash without m:s (metadata only, or written before m:s existed).
local function scan(key)
  local total = 0
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if counted(field) then total = total + redis.call('HSTRLEN', key, field) end
  end
  return total
end

-- ${FUNCTION.load} KEYS[1]=session hash; ARGV: ttl_ms (0: leave the TTL). Refreshes the TTL and returns the whole hash
-- (HGETALL), {} when the session does not exist, or for a large session {${LOAD_LARGE}, m:v, m:c, m:a, m:u}.
redis.register_function('${FUNCTION.load}', function(keys, args)
  local key = keys[1]
  if args[1] == '0' then
    if redis.call('EXISTS', key) == 0 then return {} end
  elseif redis.call('PEXPIRE', key, args[1]) == 0 then return {} end
  local size = redis.call('HGET', key, 'm:s')
  if size and tonumber(size) > LARGE then
    local meta = redis.call('HMGET', key, 'm:v', 'm:c', 'm:a', 'm:u')
    return {${LOAD_LARGE}, meta[1], meta[2], meta[3], meta[4]}
  end
  return redis.call('HGETALL', key)
end)

-- ${FUNCTION.write} KEYS[1]=session hash
-- ARGV: header (see writeHeader), [cas_field, cas_sha,] field1, value1, ..., then the fields to delete.
-- m:s keeps the byte count of d: and f: fields up to date from the touched fields alone, so the
-- max_bytes check never reads the whole session.
-- Every write but a create of metadata alone bumps m:v.
-- Returns {1, m:v} ok | {0, current} compare-and-set lost | {-1} session gone | {-2, bytes} too large
redis.register_function('${FUNCTION.write}', function(keys, args)
  local key = keys[1]
  local max, ttl, flags, ndel = string.match(args[1], '^(%d+)t?(%d*)([cxk]*)d?(%d*)$')
  max = tonumber(max)
  ndel = tonumber(ndel) or 0
  local create, clear, cas = false, false, false
  if flags ~= '' then
    create = string.find(flags, 'c', 1, true) ~= nil
    clear = string.find(flags, 'x', 1, true) ~= nil
    cas = string.find(flags, 'k', 1, true) ~= nil
  end
  -- m:c is in every session keepsake made: without it the session is gone.
  local meta = redis.call('HMGET', key, 'm:s', 'm:v', 'm:c')
  if not meta[3] and not create then return {-1} end
  local first = 2
  if cas then
    first = 4
    local current = redis.call('HGET', key, args[2])
    local expected = args[3]
    if (current == false and expected ~= '') or (current ~= false and redis.sha1hex(current) ~= expected) then
      return {0, current}
    end
  end
  local first_del = #args - ndel + 1
  local sets = {}
  local resize = clear
  for i = first, first_del - 1, 2 do
    sets[#sets + 1] = args[i]
    sets[#sets + 1] = args[i + 1]
    if not resize and counted(args[i]) then resize = true end
  end
  if not resize then
    for i = first_del, #args do
      if counted(args[i]) then resize = true end
    end
  end
  if resize then
    local size = tonumber(meta[1])
    if clear then size = 0 elseif size == nil then size = scan(key) end
    for i = first, first_del - 1, 2 do
      if counted(args[i]) then
        if not clear then size = size - redis.call('HSTRLEN', key, args[i]) end
        size = size + string.len(args[i + 1])
      end
    end
    if not clear then
      for i = first_del, #args do
        if counted(args[i]) then size = size - redis.call('HSTRLEN', key, args[i]) end
      end
    end
    if max > 0 and size > max then return {-2, size} end
    if clear then
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if counted(field) then redis.call('HDEL', key, field) end
      end
    end
    sets[#sets + 1] = 'm:s'
    sets[#sets + 1] = size
  end
  local version = false
  if resize or not create then
    version = (tonumber(meta[2]) or 0) + 1
    sets[#sets + 1] = 'm:v'
    sets[#sets + 1] = version
  end
  if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  if ndel > 0 then redis.call('HDEL', key, unpack(args, first_del, #args)) end
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  redis.call('PUBLISH', string.sub(key, 1, -ID_LENGTH - 1) .. 'events', 'c:' .. string.sub(key, -ID_LENGTH))
  return {1, version}
end)

-- ${FUNCTION.rename} KEYS[1]=old hash, KEYS[2]=new hash (same slot on a cluster)
-- ARGV: ttl_ms, channel, notice. Returns 1, or 0 when the old session is gone.
redis.register_function('${FUNCTION.rename}', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return 0 end
  redis.call('RENAME', keys[1], keys[2])
  redis.call('PEXPIRE', keys[2], args[1])
  if args[2] ~= '' then redis.call('PUBLISH', args[2], args[3]) end
  return 1
end)

-- ${FUNCTION.destroy} KEYS[1]=session hash; ARGV: channel, notice. Returns 1 if it existed.
redis.register_function('${FUNCTION.destroy}', function(keys, args)
  local existed = redis.call('DEL', keys[1])
  if args[1] ~= '' then redis.call('PUBLISH', args[1], args[2]) end
  return existed
end)
`;
