import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionValueError } from '../../src/index.js';
import { ValueCodec } from '../../src/session/value-codec.js';

const codec = new ValueCodec();

test('values msgpackr supports round-trip', () => {
  for (const value of ['text', 42, -1.5, true, null, [1, 'two', { three: 3 }], { nested: { list: [1, 2] } }, new Date(0), 2n ** 60n, Buffer.from('bytes')]) {
    assert.deepEqual(codec.decode(codec.encode('k', value)), value);
  }
});

test('encoding is deterministic: equal values give equal bytes', () => {
  const a = codec.encode('k', { basket: [{ sku: 'a', qty: 1 }], name: 'Ada' });
  const b = codec.encode('k', { basket: [{ sku: 'a', qty: 1 }], name: 'Ada' });
  assert.ok(a.equals(b));
});

test('functions and symbols are refused with the key named, at any depth', () => {
  for (const value of [() => 1, Symbol('s'), { deep: [{ fn: () => 1 }] }, new Map([[1, 2]]), new Set([1]), { list: [new (class Point { x = 1 })()] }]) {
    assert.throws(
      () => codec.encode('basket', value),
      (error: unknown) => error instanceof SessionValueError && error.code === 'ERR_SESSION_VALUE_INVALID' && /'basket'/.test(error.message),
    );
  }
});

test('corrupt bytes throw on decode (the caller treats the key as absent)', () => {
  assert.throws(() => codec.decode(Buffer.from([0x92, 0x01])));
  assert.throws(() => codec.decode(Buffer.from([0xc1])));
});
