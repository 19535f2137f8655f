// The read-only session a WebSocket route sees: every kind of write throws ERR_SESSION_READ_ONLY,
// values handed out are deep-frozen copies, and the view follows what the live layer shows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/session/session.js';
import { SessionData } from '../../src/session/session-data.js';
import { ValueCodec } from '../../src/session/value-codec.js';
import { SessionReadOnlyError } from '../../src/errors.js';
import { emptyReadOnlySession, readOnlySession, type ReadOnlySession } from '../../src/websocket/read-only-session.js';

const codec = new ValueCodec();

function session(values: Record<string, unknown>, userId: string | null = null, id = 'a'.repeat(43)): Session {
  const stored = new Map(Object.entries(values).map(([key, value]) => [key, codec.encode(key, value)]));
  const data = new SessionData(codec, stored, async () => {
    throw new Error('the read-only view must never reach the updater');
  });
  return new Session(id, data, { createdAt: Date.now(), anonTag: 'tag123', userId }, false);
}

/** Reads any key, whatever the app declared (the demo's declaration merging narrows SessionKey). */
const read = (view: ReadOnlySession, key: string): any => (view.data.get as (key: string) => unknown)(key);

function assertReadOnly(write: () => unknown, what: string): void {
  assert.throws(write, (error: unknown) => {
    assert.ok(error instanceof SessionReadOnlyError, `${what}: expected SessionReadOnlyError, got ${String(error)}`);
    assert.equal((error as SessionReadOnlyError).code, 'ERR_SESSION_READ_ONLY', what);
    return true;
  });
}

const sample = () =>
  session({
    name: 'Ada',
    basket: [{ sku: 'apple', qty: 2 }],
    profile: { address: { city: 'Paris' }, tags: ['a', 'b'] },
    seen: new Date(0),
    bytes: Buffer.from([1, 2, 3]),
  });

test('reads show the session: user, data, keys, toJSON', () => {
  const { view } = readOnlySession(session({ name: 'Ada', basket: [{ sku: 'apple', qty: 2 }] }, 'alice'));
  assert.equal(view.user, 'alice');
  assert.equal(view.authenticated, true);
  assert.equal(view.exists, true);
  assert.equal(view.id, 'a'.repeat(43));
  assert.equal(view.data.get('name'), 'Ada');
  assert.deepEqual(view.data.get('basket'), [{ sku: 'apple', qty: 2 }]);
  assert.equal(view.data.has('name'), true);
  assert.deepEqual(view.data.keys().sort(), ['basket', 'name']);
  assert.equal(JSON.stringify(view.data.toJSON()), JSON.stringify({ name: 'Ada', basket: [{ sku: 'apple', qty: 2 }] }));
  assert.equal(JSON.stringify(view), JSON.stringify({ id: 'a'.repeat(43), exists: true, user: 'alice', authenticated: true, data: { name: 'Ada', basket: [{ sku: 'apple', qty: 2 }] } }));
});

test('every mutator reached through a cast throws ERR_SESSION_READ_ONLY', () => {
  const { view } = readOnlySession(sample());
  const data = view.data as any;
  assertReadOnly(() => data.put('name', 'Eve'), 'data.put');
  assertReadOnly(() => data.set('name', 'Eve'), 'data.set');
  assertReadOnly(() => data.delete('name'), 'data.delete');
  assertReadOnly(() => data.clear(), 'data.clear');
  assertReadOnly(() => data.update('name', () => 'Eve'), 'data.update (throws before any promise)');
  assertReadOnly(() => data.commit({ sets: new Map(), deletes: [], cleared: true }), 'data.commit');
  assertReadOnly(() => data.applyUpdate('name', undefined, undefined), 'data.applyUpdate');
  const cast = view as any;
  for (const method of ['regenerate', 'destroy', 'persist', 'flash', 'bindUser', 'changeId', 'markStored', 'markFresh', 'userStored']) {
    assertReadOnly(() => cast[method]('x'), `session.${method}`);
  }
  assertReadOnly(() => cast.flashes.set('notice', 'hi'), 'session.flashes.set');
  assert.equal(view.data.get('name'), 'Ada', 'nothing changed');
});

test('assigning, defining or deleting properties of the view throws ERR_SESSION_READ_ONLY', () => {
  const { view } = readOnlySession(sample());
  const cast = view as any;
  assertReadOnly(() => (cast.user = 'mallory'), 'view.user =');
  assertReadOnly(() => (cast.authenticated = true), 'view.authenticated =');
  assertReadOnly(() => (cast.data = {}), 'view.data =');
  assertReadOnly(() => (cast.data.get = () => 'x'), 'data.get =');
  assertReadOnly(() => (cast.meta.userId = 'mallory'), 'view.meta.userId =');
  assertReadOnly(() => delete cast.user, 'delete view.user');
  assertReadOnly(() => Object.defineProperty(view, 'user', { value: 'mallory' }), 'defineProperty(view)');
  assertReadOnly(() => Object.setPrototypeOf(view, null), 'setPrototypeOf(view)');
  assertReadOnly(() => Object.assign(view.data, { put: () => undefined }), 'Object.assign(data)');
  assert.equal(view.user, 'anon-tag123');
  assert.equal(view.authenticated, false);
});

test('values handed out are deep-frozen copies whose mutation throws ERR_SESSION_READ_ONLY', () => {
  const source = sample();
  const { view } = readOnlySession(source);
  const basket = read(view, 'basket');
  const profile = read(view, 'profile');
  assert.ok(Object.isFrozen(basket) && Object.isFrozen(basket[0]) && Object.isFrozen(profile.address) && Object.isFrozen(profile.tags));
  assertReadOnly(() => basket.push({ sku: 'pear', qty: 1 }), 'array push');
  assertReadOnly(() => basket.pop(), 'array pop');
  assertReadOnly(() => basket.unshift(null), 'array unshift');
  assertReadOnly(() => basket.fill(null), 'array fill');
  assertReadOnly(() => basket.splice(0, 1), 'array splice');
  assertReadOnly(() => (basket.length = 0), 'array length =');
  assertReadOnly(() => (basket[0] = null), 'array element =');
  assertReadOnly(() => (basket[0].qty = 999), 'nested property =');
  assertReadOnly(() => delete basket[0].sku, 'delete nested property');
  assertReadOnly(() => (profile.address.city = 'Lyon'), 'deep property =');
  assertReadOnly(() => profile.tags.reverse(), 'deep array reverse');
  assertReadOnly(() => Object.assign(profile, { extra: 1 }), 'Object.assign on a value');
  assertReadOnly(() => Object.defineProperty(profile, 'extra', { value: 1 }), 'defineProperty on a value');
  const toJSON = view.data.toJSON() as any;
  assertReadOnly(() => (toJSON.name = 'Eve'), 'toJSON() result =');
  assertReadOnly(() => (toJSON.basket[0].qty = 1), 'toJSON() nested =');

  const seen = read(view, 'seen');
  assert.equal(seen.getTime(), 0, 'Date methods still read');
  assertReadOnly(() => seen.setFullYear(2000), 'Date setFullYear');
  const bytes = read(view, 'bytes');
  assert.equal(bytes[1], 2, 'binary values still read');
  assertReadOnly(() => (bytes[0] = 9), 'typed array element =');
  assertReadOnly(() => bytes.fill(0), 'typed array fill');

  // Nothing reached the session underneath, and the copies are not the session's own objects.
  assert.deepEqual(source.data.get('basket' as never), [{ sku: 'apple', qty: 2 }]);
  assert.deepEqual(source.data.get('profile' as never), { address: { city: 'Paris' }, tags: ['a', 'b'] });
  assert.notEqual(basket, source.data.get('basket' as never));
  assert.deepEqual(source.data.changes().sets.size, 0, 'a persist would write nothing');
  assert.equal(read(view, 'basket'), basket, 'the same frozen copy until the session changes');
});

test('the view follows what it is shown (a newer read, a login), and keeps its identity', () => {
  const handle = readOnlySession(session({ name: 'Ada' }));
  const { view } = handle;
  const before = read(view, 'name');
  handle.show(session({ name: 'Grace', basket: [{ sku: 'fig', qty: 1 }] }, 'grace', 'b'.repeat(43)));
  assert.equal(before, 'Ada');
  assert.equal(view.data.get('name'), 'Grace');
  assert.equal(view.user, 'grace');
  assert.equal(view.authenticated, true);
  assert.equal(view.id, 'b'.repeat(43));
  assert.deepEqual(view.data.get('basket'), [{ sku: 'fig', qty: 1 }]);
});

test('a connection without a session has an empty view that refuses writes too', () => {
  const { view } = emptyReadOnlySession('anon-xyz');
  assert.equal(view.exists, false);
  assert.equal(view.id, null);
  assert.equal(view.user, 'anon-xyz');
  assert.equal(view.authenticated, false);
  assert.equal(view.data.get('name'), undefined);
  assert.deepEqual(view.data.keys(), []);
  assertReadOnly(() => (view.data as any).put('name', 'Eve'), 'put on the empty view');
  assertReadOnly(() => ((view as any).user = 'x'), 'assign on the empty view');
});
