/**
 * The reconnect backoff (DEMO-APP.md "Bounds": once Redis is back, requests succeed again within
 * a few seconds): exponential from ~50 ms, with jitter, capped near 2 s.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reconnectDelay } from '../../src/redis/redis-client-factory.js';

test('the reconnect delay grows from tens of ms, never exceeds 2 s, and sits between 1 and 2 s once capped', () => {
  for (let round = 0; round < 200; round++) {
    const first = reconnectDelay(1);
    assert.ok(first >= 50 && first <= 100, `attempt 1 waits ${first} ms`);
    for (let attempt = 1; attempt <= 1000; attempt = attempt < 20 ? attempt + 1 : attempt * 10) {
      const delay = reconnectDelay(attempt);
      assert.ok(Number.isInteger(delay) && delay > 0 && delay <= 2000, `attempt ${attempt} waits ${delay} ms`);
      if (attempt >= 6) assert.ok(delay >= 1000, `attempt ${attempt} waits ${delay} ms: the cap is near 2 s, with jitter down to half`);
    }
  }
  // Jitter: nodes that lost Redis together do not all come back in the same millisecond.
  assert.ok(new Set(Array.from({ length: 50 }, () => reconnectDelay(10))).size > 10);
});
