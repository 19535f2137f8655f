// Which sessions a node refreshed lately (src/session/ttl-refreshes.ts): the rule that lets a read
// skip its PEXPIRE, and the cases where skipping would let an active session expire.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtlRefreshes } from '../../src/session/ttl-refreshes.js';

const DAY_MS = 86_400_000;
/** ttl_refresh_slack = 1. */
const REFRESH_SLACK = 0.01;

test('a session never refreshed here is due; within 1 % of its lifespan it is not; at 1 % it is again', () => {
  const refreshes = new TtlRefreshes(REFRESH_SLACK);
  assert.equal(refreshes.due('a', DAY_MS, 0), true);
  refreshes.refreshed('a', DAY_MS, 1_000);
  assert.equal(refreshes.due('a', DAY_MS, 1_000 + DAY_MS * REFRESH_SLACK - 1), false);
  assert.equal(refreshes.due('a', DAY_MS, 1_000 + DAY_MS * REFRESH_SLACK), true);
});

test('the shorter lifespan wins: a caller that does not know a login’s 5-minute lifespan still refreshes it in time', () => {
  const refreshes = new TtlRefreshes(REFRESH_SLACK);
  refreshes.refreshed('kiosk', 300_000, 0); // the load that learned m:l = 300 s
  // Asked with cookie_lifespan (a day: 1 % = 14.4 min, longer than the whole 5 minutes):
  assert.equal(refreshes.due('kiosk', DAY_MS, 3_000), true, '1 % of 300 s has passed');
  assert.equal(refreshes.due('kiosk', DAY_MS, 2_999), false);
});

test('forget() makes the next read refresh; since() tells a refresh at or after a time', () => {
  const refreshes = new TtlRefreshes(REFRESH_SLACK);
  refreshes.refreshed('b', DAY_MS, 500);
  assert.equal(refreshes.since('b', 500), true);
  assert.equal(refreshes.since('b', 501), false);
  refreshes.forget('b');
  assert.equal(refreshes.due('b', DAY_MS, 501), true);
  assert.equal(refreshes.since('b', 0), false);
});

test('bounded: past its size the oldest entry goes first, and a forgotten session is simply due', () => {
  const refreshes = new TtlRefreshes(REFRESH_SLACK, 2);
  refreshes.refreshed('x', DAY_MS, 0);
  refreshes.refreshed('y', DAY_MS, 0);
  refreshes.refreshed('x', DAY_MS, 1); // x is the newest now
  refreshes.refreshed('z', DAY_MS, 2); // y goes
  assert.equal(refreshes.due('y', DAY_MS, 3), true);
  assert.equal(refreshes.due('x', DAY_MS, 3), false);
  assert.equal(refreshes.due('z', DAY_MS, 3), false);
});

test('ttl_refresh_slack = 0: every read is due; a write still skips the refresh its own load sent moments ago (floor)', () => {
  const refreshes = new TtlRefreshes(0);
  refreshes.refreshed('c', DAY_MS, 1_000);
  assert.equal(refreshes.due('c', DAY_MS, 1_000), true, 'a read refreshes every time');
  assert.equal(refreshes.due('c', DAY_MS, 1_500, 1_000), false, 'a write 0.5 s after the load: not again');
  assert.equal(refreshes.due('c', DAY_MS, 2_000, 1_000), true);
});
