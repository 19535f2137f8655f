/**
 * What a login records about its device, and when "last seen" moves (pure code, no Redis).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserAndOs, DEVICE_FIELD, LastSeenThrottle, lastSeenStale, LAST_SEEN_EVERY_MS, loginDeviceFields, USER_AGENT_MAX } from '../../src/session/device-info.js';

test('a login records a fresh random handle, the User-Agent cut to 256 characters, the IP and last seen', () => {
  const now = 1_700_000_000_000;
  const fields = loginDeviceFields({ headers: { 'user-agent': 'a'.repeat(1000) }, ip: '10.0.0.7' }, now);
  assert.equal(fields.get(DEVICE_FIELD.userAgent)!.length, USER_AGENT_MAX);
  assert.equal(fields.get(DEVICE_FIELD.ip), '10.0.0.7');
  assert.equal(fields.get(DEVICE_FIELD.lastSeen), String(now));
  assert.match(fields.get(DEVICE_FIELD.handle)!, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(loginDeviceFields({ headers: {} }).get(DEVICE_FIELD.handle), fields.get(DEVICE_FIELD.handle));
});

test('no User-Agent and no IP: neither is recorded', () => {
  const fields = loginDeviceFields({ headers: {} });
  assert.equal(fields.has(DEVICE_FIELD.userAgent), false);
  assert.equal(fields.has(DEVICE_FIELD.ip), false);
});

test('last seen moves once a minute at most, and never for a session that has none', () => {
  const now = 1_700_000_000_000;
  assert.equal(lastSeenStale(now - LAST_SEEN_EVERY_MS + 1, now), false);
  assert.equal(lastSeenStale(now - LAST_SEEN_EVERY_MS, now), true);
  assert.equal(lastSeenStale(undefined, now), false);
});

test('concurrent requests that read a stale last seen write it once per node and minute', () => {
  const throttle = new LastSeenThrottle(2);
  const now = 1_700_000_000_000;
  assert.equal(throttle.claim('a', now), true);
  assert.equal(throttle.claim('a', now + 10), false);
  assert.equal(throttle.claim('a', now + LAST_SEEN_EVERY_MS), true);
  assert.equal(throttle.claim('b', now), true);
  assert.equal(throttle.claim('c', now), true); // bounded: the oldest entry ('a') makes room
  assert.equal(throttle.claim('a', now + LAST_SEEN_EVERY_MS + 1), true);
});

test('browser and OS names come from the User-Agent', () => {
  assert.deepEqual(browserAndOs('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'), { browser: 'Chrome', os: 'Linux' });
  assert.deepEqual(browserAndOs('Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0'), { browser: 'Firefox', os: 'macOS' });
  assert.deepEqual(browserAndOs('Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36'), { browser: 'Chrome', os: 'Android' });
  assert.deepEqual(browserAndOs('x'.repeat(50)), { browser: null, os: null });
  assert.deepEqual(browserAndOs(null), { browser: null, os: null });
});
