/**
 * @module The Redis 7 function library keepsake writes through. One FCALL per write keeps a
 * persist at one round trip, touches one key (Redis Cluster safe) and publishes the change notice
 * in the same atomic step, on the session's own channel (named like its key: only the nodes holding
 * sockets of the session are subscribed to it).
 *
 * Session hash layout: `d:<key>` data fields (msgpack bytes), `f:<key>` flash values, and
 * metadata `m:c` (created at, ms), `m:a` (anonymous tag), `m:u` (user id), `m:s` (bytes of the d:
 * and f: fields, kept by the write function), `m:v` (the operation ids of the last writes, see
 * below), `m:l` (the idle lifespan in seconds a login chose, instead of cookie_lifespan; absent
 * when it did not). User keys can never reach `m:` because every data field is namespaced.
 *
 * Every write (data, login) carries an operation id, unique for ever (a random per-process part
 * and a counter). `m:v` keeps the ids of the session's last writes, newest first: a command
 * ioredis sends again after a reconnect (its reply was lost) finds its id there and is answered
 * "done" without running twice. A re-send is marked as one (resend-marked-command.ts): when its id
 * is not there and older ids have left `m:v`, it may have been applied already, so it is answered
 * "unknown" and not applied (the request gets a 503: at most once). The newest id is also the
 * session's version: it never repeats, even after a failover that lost writes, so a node's copy
 * of a large session can trust it.
 */

import { ID_LENGTH } from '../session/session-id.js';
import { RESEND_MARK } from './resend-marked-command.js';

// v5: a re-sent write whose id may have been pushed out of m:v answers -4 instead of being applied
// (v4: per-session notice channels; v3 published every notice on `{prefix}events`).
export const LIBRARY_NAME = 'keepsake_v5';

/** Function names of the library (unique across every library loaded on the server). */
export const FUNCTION = { load: 'ks5_l', write: 'ks5_w', rename: 'ks5_rename', destroy: 'ks5_destroy' } as const;

/**
 * Field-name prefixes inside a session hash. `m:s` is the byte count of the d: and f: fields,
 * `m:v` the ids of the last writes, `;`-terminated, newest (the version) first, and a final `~`
 * once older ids have been dropped to keep it within RECENT_OPS_BYTES.
 */
export const FIELD = { data: 'd:', flash: 'f:', created: 'm:c', anon: 'm:a', user: 'm:u', size: 'm:s', version: 'm:v', lifespan: 'm:l' } as const;

/**
 * Sessions whose d: and f: fields hold more bytes than this are not sent through Lua (copying a
 * large reply through a script costs Redis several times a plain HGETALL): the load function
 * answers with their version, and the store uses its copy or reads them with HGETALL.
 */
export const LARGE_SESSION_BYTES = 8192;

/**
 * `m:v` keeps the ids of the newest writes that fit in this many bytes: five or six. A re-send
 * comes one reconnect after its first send (~50–100 ms); writes to the same session that land in
 * between may push its id out, and then the re-send is refused ({-4}) rather than risk a second
 * application. 64 is Redis's default `hash-max-listpack-value`: a longer field would turn every
 * small session from the compact encoding into a hash table.
 */
export const RECENT_OPS_BYTES = 64;

/** Most elements one HSET or HDEL is given (Lua's unpack() fails past ~8000). */
export const COMMAND_CHUNK = 4000;

/** The load function's answer for a large session: `[LOAD_LARGE, version (newest id in m:v), m:c, m:a, m:u, m:l]`. */
export const LOAD_LARGE = 1;

/** Result codes of the write and rename functions. */
export const WRITE_OK = 1;
/** The write was applied by an earlier send of the same command (its reply was lost). */
export const WRITE_REPEATED = 2;
export const WRITE_CONFLICT = 0;
export const WRITE_GONE = -1;
export const WRITE_TOO_LARGE = -2;
/** The write reached Redis after the deadline in its header (`e<ms>`): nothing was written. */
export const WRITE_EXPIRED = -3;
/**
 * A re-send (see resend-marked-command.ts) whose id is not in m:v after older ids left it (its
 * final `~`): the first send may have been applied and its id pushed out. Nothing was written.
 */
export const WRITE_UNKNOWN = -4;

/**
 * The first argument of a write: `<max_bytes>` (0 = no limit), then, in this order and each only
 * when needed: `t<ttl_ms>` refresh the TTL, `c` create (do not require the session to exist),
 * `x` clear every data and flash field first, `k` compare-and-set (the next two arguments are the
 * field and the SHA-1 of the bytes it must hold, '' = absent), `d<n>` the last n arguments are
 * fields to delete, `e<ms>` a deadline (Redis time, ms since epoch: past it, nothing is written
 * and the answer is {-3}; logins only); last `:<op_id>`, the write's operation id (base64url characters).
 * ioredis's re-send of a write after a lost reply starts with `r` (resend-marked-command.ts).
 */
export function writeHeader(options: { maxBytes: string; ttlMs?: string | undefined; create?: boolean; clear?: boolean; compare?: boolean; deletes?: number; deadlineMs?: number; opId: string }): string {
  let header = options.maxBytes;
  if (options.ttlMs !== undefined) header += `t${options.ttlMs}`;
  if (options.create) header += 'c';
  if (options.clear) header += 'x';
  if (options.compare) header += 'k';
  if (options.deletes) header += `d${options.deletes}`;
  if (options.deadlineMs !== undefined) header += `e${Math.floor(options.deadlineMs)}`;
  return `${header}:${options.opId}`;
}

// Every argument is sent with every write, so the hot function has a short name and one compact
// header; the notice channel is the key itself and the text is derived from it (prefix + 43-character id).
export const LIBRARY_SOURCE = `#!lua name=${LIBRARY_NAME}

local ID_LENGTH = ${ID_LENGTH}
local LARGE = ${LARGE_SESSION_BYTES}
local RECENT = ${RECENT_OPS_BYTES}
local CHUNK = ${COMMAND_CHUNK}

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

-- HSET or HDEL of list[from..to], in chunks unpack() can take.
local function each_chunk(command, key, list, from, to)
  for i = from, to, CHUNK do
    redis.call(command, key, unpack(list, i, math.min(i + CHUNK - 1, to)))
  end
end

-- True when op is among the ids in m:v ('c;b;a;', newest first).
local function seen(ops, op)
  if not ops then return false end
  local entry = op .. ';'
  local at = string.find(ops, entry, 1, true)
  while at do
    if at == 1 or string.byte(ops, at - 1) == 59 then return true end
    at = string.find(ops, entry, at + 1, true)
  end
  return false
end

-- m:v with op added first, keeping the newest ids that fit in RECENT bytes (the oldest go).
-- Once an id has gone, m:v ends with '~' for good: a re-send not found may have been applied.
local function remember(ops, op)
  ops = ops or ''
  local dropped = string.byte(ops, -1) == 126
  if dropped then ops = string.sub(ops, 1, -2) end
  ops = op .. ';' .. ops
  while #ops + (dropped and 1 or 0) > RECENT do
    local kept = string.match(ops, '^(.+;)[^;]+;$')
    if not kept then break end
    ops = kept
    dropped = true
  end
  if dropped then ops = ops .. '~' end
  return ops
end

-- The newest id in m:v (the version), or false. Anchored at the start: no scan of the whole field.
local function newest(ops)
  return ops and string.match(ops, '^[^;]+') or false
end

-- ${FUNCTION.load} KEYS[1]=session hash; ARGV: ttl_ms (0: leave the TTL). Refreshes the TTL (to m:l seconds when the
-- login chose a lifespan) and returns the whole hash (HGETALL), {} when the session does not exist, or for a large
-- session {${LOAD_LARGE}, version, m:c, m:a, m:u, m:l}.
redis.register_function('${FUNCTION.load}', function(keys, args)
  local key = keys[1]
  local meta = redis.call('HMGET', key, 'm:s', 'm:l')
  if args[1] == '0' then
    if redis.call('EXISTS', key) == 0 then return {} end
  else
    local ttl = args[1]
    if meta[2] then ttl = tonumber(meta[2]) * 1000 end
    if redis.call('PEXPIRE', key, ttl) == 0 then return {} end
  end
  if meta[1] and tonumber(meta[1]) > LARGE then
    local more = redis.call('HMGET', key, 'm:v', 'm:c', 'm:a', 'm:u')
    return {${LOAD_LARGE}, newest(more[1]), more[2], more[3], more[4], meta[2]}
  end
  return redis.call('HGETALL', key)
end)

-- The write of ${FUNCTION.write} and ${FUNCTION.rename}: see there. Publishes notice, unless nil.
-- Returns {1, previous version} ok | {2} done by an earlier send of this op | {0, current}
-- compare-and-set lost | {-1} session gone | {-2, bytes} too large | {-3} past its deadline
-- | {-4} a re-send that may have been applied already (its id may have left m:v)
local function write(key, args, notice)
  local resent, max, ttl, flags, ndel, deadline, op = string.match(args[1], '^(${RESEND_MARK}?)(%d+)t?(%d*)([cxk]*)d?(%d*)e?(%d*):([%w_-]+)$')
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
  if seen(meta[2], op) then return {2} end
  -- A re-send whose id is not among the recent ones: not applied before, unless ids have left m:v
  -- (its '~'), this one perhaps among them. Then it cannot tell: apply nothing (the sender answers
  -- 503: at most once).
  if resent ~= '' and meta[2] and string.byte(meta[2], -1) == 126 then return {-4} end
  -- Past its sender's deadline (Redis time, ms): the sender answered 503 already; applying it now
  -- (a command held in a buffer while Redis was stopped, or queued through a reconnect) would
  -- act behind the visitor's back. Only logins carry one: a late one would move the session away
  -- from the cookie the browser kept.
  if deadline ~= '' then
    local now = redis.call('TIME')
    if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(deadline) then return {-3} end
  end
  if not meta[3] and not create then return {-1} end
  -- A new hash: no field to subtract the old bytes of.
  local empty = clear or not meta[3]
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
    if empty then size = 0 elseif size == nil then size = scan(key) end
    for i = first, first_del - 1, 2 do
      if counted(args[i]) then
        if not empty then size = size - redis.call('HSTRLEN', key, args[i]) end
        size = size + string.len(args[i + 1])
      end
    end
    if not empty then
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
  sets[#sets + 1] = 'm:v'
  sets[#sets + 1] = remember(meta[2], op)
  each_chunk('HSET', key, sets, 1, #sets)
  if ndel > 0 then each_chunk('HDEL', key, args, first_del, #args) end
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  if notice then redis.call('PUBLISH', key, notice) end
  return {1, newest(meta[2])}
end

-- ${FUNCTION.write} KEYS[1]=session hash
-- ARGV: header (see writeHeader), [cas_field, cas_sha,] field1, value1, ..., then the fields to delete.
-- m:s keeps the byte count of d: and f: fields up to date from the touched fields alone, so the
-- max_bytes check never reads the whole session. Every write adds its op id to m:v.
redis.register_function('${FUNCTION.write}', function(keys, args)
  return write(keys[1], args, 'c:' .. string.sub(keys[1], -ID_LENGTH))
end)

-- ${FUNCTION.rename} KEYS[1]=old hash, KEYS[2]=new hash (same slot on a cluster); ARGV as ${FUNCTION.write}
-- (no create, no compare-and-set). Login's commit point: writes the pending changes (the user
-- binding among them), then renames, then tells every node, in one atomic step. Returns as the write.
redis.register_function('${FUNCTION.rename}', function(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then
    -- Gone, or renamed by an earlier send of this op (its reply was lost).
    if seen(redis.call('HGET', keys[2], 'm:v'), string.match(args[1], ':([%w_-]+)$')) then return {2} end
    return {-1}
  end
  local result = write(keys[1], args, nil)
  if result[1] ~= 1 then return result end
  redis.call('RENAME', keys[1], keys[2])
  -- On the old id's channel: the nodes with its sockets subscribe to the new one before they leave it.
  redis.call('PUBLISH', keys[1], 'r:' .. string.sub(keys[1], -ID_LENGTH) .. ':' .. string.sub(keys[2], -ID_LENGTH))
  return result
end)

-- ${FUNCTION.destroy} KEYS[1]=session hash; ARGV: notice ('' = none), published on the session's channel. Returns 1 if it existed.
-- Idempotent in effect: a re-send deletes nothing more (and answers 0).
redis.register_function('${FUNCTION.destroy}', function(keys, args)
  local existed = redis.call('DEL', keys[1])
  if args[1] ~= '' then redis.call('PUBLISH', keys[1], args[1]) end
  return existed
end)
`;
