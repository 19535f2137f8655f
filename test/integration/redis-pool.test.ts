// RedisPool against a throwaway Redis: what concurrent callers issue in one event-loop turn
// reaches Redis in one socket write (src/redis/shared-writes.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/index.js';
import { RedisPool } from '../../src/redis/redis-pool.js';
import { RedisServer, parseInfo } from '../support/redis-server.js';

test('commands that concurrent callers issue in one event-loop turn reach Redis in one write, and each gets its own reply', async (t) => {
  const server = await RedisServer.start();
  t.after(() => server.stop());
  const config = validateConfig({ redis_connection_pool: { default: { host: '127.0.0.1', port: server.port } } });
  const pool = new RedisPool('default', config.redis_connection_pool.default!);
  t.after(() => pool.close());
  assert.equal(await pool.run((client) => client.ping()), 'PONG'); // connected

  // Redis counts one read per readable socket event; taking the count costs reads of its own.
  const reads = async () => Number(parseInfo(String(await server.process.command(['INFO', 'stats']))).get('total_reads_processed'));
  const start = await reads();
  const counting = (await reads()) - start;
  for (let round = 0; round < 5; round++) {
    await pool.run((client) => client.ping()); // the connection is warm: no borrow through the pool below
    const before = await reads();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.run((client) => client.incrby(`n${i}`, i + 1))));
    const after = await reads();
    assert.deepEqual(replies, Array.from({ length: 20 }, (_, i) => (round + 1) * (i + 1)), 'every caller gets its own reply');
    assert.equal(after - before - counting, 1, `round ${round}: twenty commands, one read by Redis`);
  }
});
