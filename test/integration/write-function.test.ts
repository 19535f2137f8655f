// The write and rename functions answer a command sent again (ioredis after a reconnect, when the
// first reply was lost) with "done" and change nothing, even after other writes landed in between.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { FUNCTION, LIBRARY_SOURCE, RECENT_OPS_BYTES, WRITE_EXPIRED, WRITE_GONE, WRITE_OK, WRITE_REPEATED, WRITE_UNKNOWN, writeHeader } from '../../src/redis/redis-functions.js';
import { RESEND_MARK } from '../../src/redis/resend-marked-command.js';
import { newSessionId } from '../../src/session/session-id.js';
import { RedisServer } from '../support/redis-server.js';

let server: RedisServer;
let redis: Redis;

before(async () => {
  server = await RedisServer.start();
  redis = server.client();
  await redis.function('LOAD', 'REPLACE', LIBRARY_SOURCE);
});

after(() => server?.stop());

const PREFIX = 'wf:';

function write(key: string, opId: string, fields: string[], options: { create?: boolean } = {}): Promise<unknown> {
  const args = options.create ? ['m:c', String(Date.now()), 'm:a', 'tag', ...fields] : fields;
  return redis.fcall(FUNCTION.write, 1, key, writeHeader({ maxBytes: '0', ttlMs: '60000', create: options.create, opId }), ...args);
}

test('a write sent again after later writes is answered "done" and changes nothing', async () => {
  const key = PREFIX + newSessionId();
  assert.deepEqual(await write(key, 'op1', ['d:name', 'A'], { create: true }), [WRITE_OK, null]);
  assert.deepEqual(await write(key, 'op2', ['d:name', 'B']), [WRITE_OK, 'op1'], 'the reply names the version it replaced');
  assert.deepEqual(await write(key, 'op3', ['d:other', 'x']), [WRITE_OK, 'op2']);
  assert.deepEqual(await write(key, 'op1', ['d:name', 'A'], { create: true }), [WRITE_REPEATED]);
  assert.deepEqual(await write(key, 'op2', ['d:name', 'B']), [WRITE_REPEATED]);
  assert.equal(await redis.hget(key, 'd:name'), 'B', 'the later write stands');
  assert.equal(await redis.hget(key, 'm:v'), 'op3;op2;op1;', 'the ids of the last writes, newest first');
});

test('m:v keeps the newest operation ids within its bound, the version first', async () => {
  const key = PREFIX + newSessionId();
  await write(key, 'first', ['d:n', '0'], { create: true });
  for (let i = 1; i <= 40; i++) await write(key, `op-${i}`, ['d:n', String(i)]);
  const ops = (await redis.hget(key, 'm:v'))!;
  assert.ok(ops.length <= RECENT_OPS_BYTES, `m:v holds ${ops.length} bytes`);
  assert.ok(ops.startsWith('op-40;'), ops);
  assert.ok(ops.length > RECENT_OPS_BYTES - 6, `as many ids as fit: ${ops}`);
  assert.equal(await redis.object('ENCODING', key), 'listpack', 'a small session keeps the compact encoding');
  assert.deepEqual(await write(key, 'op-35', ['d:n', '35']), [WRITE_REPEATED]);
});

test('m:v ends with "~" once an id has left it; a marked re-send not found is then refused, and applied before that', async () => {
  const resend = (key: string, opId: string, fields: string[]) =>
    redis.fcall(FUNCTION.write, 1, key, RESEND_MARK + writeHeader({ maxBytes: '0', ttlMs: '60000', opId }), ...fields);
  const young = PREFIX + newSessionId();
  await write(young, 'y1', ['d:n', '1'], { create: true });
  assert.deepEqual(await resend(young, 'y1', ['d:n', '1']), [WRITE_REPEATED], 'found: done');
  assert.deepEqual(await resend(young, 'y2', ['d:n', '2']), [WRITE_OK, 'y1'], 'no id ever left m:v: a re-send not found was never applied');
  assert.equal(await redis.hget(young, 'm:v'), 'y2;y1;');

  const busy = PREFIX + newSessionId();
  await write(busy, 'first', ['d:n', '0'], { create: true });
  for (let i = 1; i <= 12; i++) await write(busy, `op-${i}`, ['d:n', String(i)]);
  const ops = (await redis.hget(busy, 'm:v'))!;
  assert.ok(ops.endsWith('~') && ops.length <= RECENT_OPS_BYTES, ops);
  assert.deepEqual(await resend(busy, 'first', ['d:n', 'again']), [WRITE_UNKNOWN], 'its id may have left: refused');
  assert.deepEqual(await resend(busy, 'op-12', ['d:n', '12']), [WRITE_REPEATED], 'a recent id is still found');
  assert.equal(await redis.hget(busy, 'd:n'), '12', 'nothing written by the refused re-send');
  assert.deepEqual(await write(busy, 'op-13', ['d:n', '13']), [WRITE_OK, 'op-12'], 'a first send is applied as ever');
  assert.ok((await redis.hget(busy, 'm:v'))!.startsWith('op-13;'));
  assert.equal(await redis.object('ENCODING', busy), 'listpack', 'the mark keeps m:v within the compact encoding');
});

test('a rename sent again is answered "done"; the rename of a gone session is not', async () => {
  const from = PREFIX + newSessionId();
  const to = PREFIX + newSessionId();
  await write(from, 'c1', ['d:basket', 'tea'], { create: true });
  const rename = (opId: string) => redis.fcall(FUNCTION.rename, 2, from, to, writeHeader({ maxBytes: '0', ttlMs: '60000', opId }), 'm:u', 'alice');
  assert.deepEqual(await rename('login1'), [WRITE_OK, 'c1']);
  assert.deepEqual(await redis.hmget(to, 'd:basket', 'm:u'), ['tea', 'alice'], 'data and user arrive together');
  assert.equal(await redis.exists(from), 0);
  assert.deepEqual(await rename('login1'), [WRITE_REPEATED]);
  assert.deepEqual(await rename('login2'), [WRITE_GONE]);
});

test('a login that reaches Redis past its deadline changes nothing: the old key keeps the session', async () => {
  const from = PREFIX + newSessionId();
  const to = PREFIX + newSessionId();
  await write(from, 'c1', ['d:basket', 'tea'], { create: true });
  const rename = (opId: string, deadlineMs: number) => redis.fcall(FUNCTION.rename, 2, from, to, writeHeader({ maxBytes: '0', ttlMs: '60000', deadlineMs, opId }), 'm:u', 'alice');
  assert.deepEqual(await rename('late', Date.now() - 1), [WRITE_EXPIRED]);
  assert.equal(await redis.exists(to), 0, 'not moved');
  assert.deepEqual(await redis.hmget(from, 'd:basket', 'm:u'), ['tea', null], 'the old session as it was');
  assert.deepEqual(await rename('in-time', Date.now() + 5000), [WRITE_OK, 'c1']);
  assert.equal(await redis.hget(to, 'm:u'), 'alice');
});
