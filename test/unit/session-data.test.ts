// SessionData is pure: what a request sees of its session and what a persist must write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionData, type KeyUpdater } from '../../src/session/session-data.js';
import { ValueCodec } from '../../src/session/value-codec.js';

const codec = new ValueCodec();

/** SessionData with plain string keys (the demo app's declared SessionValues are in this program too). */
interface Data {
  get(key: string): any;
  put(key: string, value: unknown): Data;
  has(key: string): boolean;
  delete(key: string): Data;
  clear(): Data;
  update(key: string, fn: (current: any) => any): Promise<any>;
  keys(): string[];
  toJSON(): Record<string, unknown>;
  changes: SessionData['changes'];
  commit: SessionData['commit'];
  readonly changed: boolean;
}

/** A session loaded with `values`; the updater records the keys it was asked to update. */
function loaded(values: Record<string, unknown> = {}) {
  const stored = new Map(Object.entries(values).map(([key, value]) => [key, codec.encode(key, value)]));
  const updates: string[] = [];
  const updater: KeyUpdater = async (key) => {
    updates.push(key);
    return 'from-store';
  };
  return { data: new SessionData(codec, stored, updater) as unknown as Data, updates };
}

/** The changes as plain values, easy to compare. */
function changesOf(data: Data) {
  const { sets, deletes, cleared } = data.changes();
  return { sets: Object.fromEntries([...sets].map(([key, bytes]) => [key, codec.decode(bytes)])), deletes: [...deletes].sort(), cleared };
}

const NONE = { sets: {}, deletes: [], cleared: false };

test('get, has, keys and toJSON reflect the loaded values', () => {
  const { data } = loaded({ name: 'Ada', basket: [{ sku: 'a', qty: 1 }], count: 3 });
  assert.equal(data.get('name'), 'Ada');
  assert.deepEqual(data.get('basket'), [{ sku: 'a', qty: 1 }]);
  assert.equal(data.get('missing'), undefined);
  assert.equal(data.has('count'), true);
  assert.equal(data.has('missing'), false);
  assert.deepEqual(data.keys().sort(), ['basket', 'count', 'name']);
  assert.deepEqual(data.toJSON(), { name: 'Ada', basket: [{ sku: 'a', qty: 1 }], count: 3 });
  assert.deepEqual(changesOf(data), NONE, 'reading changes nothing');
  assert.equal(data.changed, false);
});

test('put sets a value; unchanged values produce no changes', () => {
  const { data } = loaded({ name: 'Ada', tags: ['x'] });
  data.put('name', 'Ada'); // same bytes as stored
  data.put('tags', ['x']); // an equal new object
  assert.deepEqual(changesOf(data), NONE);
  data.put('name', 'Grace').put('fresh', { a: 1 });
  assert.equal(data.get('name'), 'Grace');
  assert.equal(data.has('fresh'), true);
  assert.deepEqual(changesOf(data), { sets: { name: 'Grace', fresh: { a: 1 } }, deletes: [], cleared: false });
  data.put('name', 'Ada'); // back to what is stored: nothing to write for it
  assert.deepEqual(changesOf(data).sets, { fresh: { a: 1 } });
});

test('a nested mutation of an object got with get() counts as a change of that key', () => {
  const { data } = loaded({ basket: [{ sku: 'a', qty: 1 }], profile: { address: { city: 'Oslo' } } });
  const basket = data.get('basket') as { sku: string; qty: number }[];
  basket[0]!.qty = 2;
  basket.push({ sku: 'b', qty: 1 });
  (data.get('profile') as { address: { city: string } }).address.city = 'Bergen';
  assert.equal(data.changed, true);
  assert.deepEqual(changesOf(data).sets, {
    basket: [{ sku: 'a', qty: 2 }, { sku: 'b', qty: 1 }],
    profile: { address: { city: 'Bergen' } },
  });
});

test('objects handed out stay watched after a persist (commit)', () => {
  const { data } = loaded({ list: [1] });
  const list = data.get('list') as number[];
  list.push(2);
  data.commit(data.changes());
  assert.deepEqual(changesOf(data), NONE, 'committed: nothing left to write');
  list.push(3);
  assert.deepEqual(changesOf(data).sets, { list: [1, 2, 3] });
});

test('delete removes one key; deleting an absent key writes nothing', () => {
  const { data } = loaded({ name: 'Ada', count: 1 });
  data.delete('name').delete('never-there');
  assert.equal(data.get('name'), undefined);
  assert.equal(data.has('name'), false);
  assert.deepEqual(data.keys(), ['count']);
  assert.deepEqual(changesOf(data), { sets: {}, deletes: ['name'], cleared: false });
  data.put('name', 'Grace'); // put after delete: a set, not a delete
  assert.deepEqual(changesOf(data), { sets: { name: 'Grace' }, deletes: [], cleared: false });
  data.put('name', undefined as never); // undefined deletes
  assert.deepEqual(changesOf(data), { sets: {}, deletes: ['name'], cleared: false });
});

test('clear removes every key; keys put after it are written with the clear', () => {
  const { data } = loaded({ name: 'Ada', count: 1 });
  data.get('name');
  data.clear();
  assert.deepEqual(data.keys(), []);
  assert.deepEqual(data.toJSON(), {});
  assert.equal(data.has('count'), false);
  assert.deepEqual(changesOf(data), { sets: {}, deletes: [], cleared: true });
  data.put('count', 1); // same bytes as before the clear, still written: the clear removes it
  assert.deepEqual(changesOf(data), { sets: { count: 1 }, deletes: [], cleared: true });
  data.commit(data.changes());
  assert.deepEqual(changesOf(data), NONE);
  assert.deepEqual(data.toJSON(), { count: 1 });
});

test('put of a function is refused with ERR_SESSION_VALUE_INVALID naming the key; nothing changes', () => {
  const { data } = loaded({ name: 'Ada', settings: { theme: 'dark' } });
  const invalid = (key: string) => (error: unknown) => {
    const { code, message, statusCode } = error as { code: string; message: string; statusCode: number };
    assert.equal(code, 'ERR_SESSION_VALUE_INVALID');
    assert.equal(statusCode, 500);
    assert.match(message, new RegExp(`'${key}'`));
    return true;
  };
  assert.throws(() => data.put('name', () => 'x'), invalid('name'));
  assert.throws(() => data.put('settings', { theme: 'dark', onChange() {} }), invalid('settings'));
  assert.throws(() => data.put('brand-new', [1, Symbol('s')]), invalid('brand-new'));
  assert.equal(data.get('name'), 'Ada');
  assert.deepEqual(data.get('settings'), { theme: 'dark' });
  assert.equal(data.has('brand-new'), false);
  assert.deepEqual(changesOf(data), NONE);
});

test('invalid keys are refused with ERR_SESSION_KEY_INVALID', () => {
  const { data } = loaded({ name: 'Ada' });
  const invalid = (error: unknown) => (error as { code: string }).code === 'ERR_SESSION_KEY_INVALID';
  assert.throws(() => data.put('', 1), invalid);
  assert.throws(() => data.put('k'.repeat(201), 1), invalid);
  assert.throws(() => data.put(42 as never, 1), invalid);
  assert.throws(() => data.delete(''), invalid);
  assert.throws(() => data.update('', (x) => x), invalid);
  data.put('k'.repeat(200), 1); // the longest allowed
  assert.deepEqual(Object.keys(changesOf(data).sets).map((key) => key.length), [200]);
  assert.equal(data.get('name'), 'Ada');
});

test('undecodable stored bytes read as an absent key', () => {
  const stored = new Map([['bad', Buffer.from([0x92, 0x01])], ['good', codec.encode('good', 1)]]); // truncated array
  const seen: string[] = [];
  const data = new SessionData(codec, stored, async () => undefined, (key) => seen.push(key)) as unknown as Data;
  assert.equal(data.get('bad'), undefined);
  assert.equal(data.has('bad'), false);
  assert.deepEqual(data.toJSON(), { good: 1 });
  assert.deepEqual(seen, ['bad']);
});

test('update with no pending change of its key goes to the store', async () => {
  const { data, updates } = loaded({ count: 1 });
  data.get('count');
  assert.equal(await data.update('count', (n) => (n as number) + 1), 'from-store');
  assert.deepEqual(updates, ['count']);
  const { data: other, updates: otherUpdates } = loaded({ list: [1] });
  other.get('list'); // handed out but not mutated: still no pending change
  await other.update('list', (list) => list);
  assert.deepEqual(otherUpdates, ['list']);
});

test("update after this request's own put, delete, clear or nested mutation extends that change", async () => {
  const { data, updates } = loaded({ count: 1, list: [1], gone: 'x' });
  data.put('count', 10);
  assert.equal(await data.update('count', (n) => (n as number) + 1), 11);
  (data.get('list') as number[]).push(2);
  assert.deepEqual(await data.update('list', (list) => [...(list as number[]), 3]), [1, 2, 3]);
  data.delete('gone');
  assert.equal(await data.update('gone', (value) => (value === undefined ? 'back' : 'stale')), 'back');
  assert.deepEqual(updates, [], 'no store round trip: the result is written by the persist');
  assert.deepEqual(changesOf(data), { sets: { count: 11, list: [1, 2, 3], gone: 'back' }, deletes: [], cleared: false });

  const { data: cleared, updates: clearedUpdates } = loaded({ count: 5 });
  cleared.clear();
  assert.equal(await cleared.update('count', (n) => ((n as number | undefined) ?? 0) + 1), 1);
  assert.deepEqual(clearedUpdates, []);
  assert.deepEqual(changesOf(cleared), { sets: { count: 1 }, deletes: [], cleared: true });
});

test('a local update whose function throws leaves the pending value as it was', async () => {
  const { data } = loaded({});
  data.put('list', [1]);
  await assert.rejects(
    data.update('list', (list) => {
      (list as number[]).push(99); // fn gets a copy
      throw new Error('refused');
    }),
    /refused/,
  );
  assert.deepEqual(data.get('list'), [1]);
  await assert.rejects(data.update('list', () => (() => 1) as never), (error: unknown) => (error as { code: string }).code === 'ERR_SESSION_VALUE_INVALID');
  assert.deepEqual(changesOf(data).sets, { list: [1] });
});
