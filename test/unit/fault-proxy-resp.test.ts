// The fault proxy pairs replies with commands by reading the RESP stream: respEnd must find where
// each value ends, and say "not yet" for a value split across TCP chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { respEnd } from '../support/fault-proxy.js';

const buf = (text: string) => Buffer.from(text, 'latin1');

test('respEnd finds the end of each RESP2 and RESP3 value', () => {
  assert.equal(respEnd(buf('+OK\r\n'), 0), 5);
  assert.equal(respEnd(buf('-ERR no\r\n:1\r\n'), 0), 9);
  assert.equal(respEnd(buf('-ERR no\r\n:1\r\n'), 9), 13);
  assert.equal(respEnd(buf('$-1\r\n'), 0), 5);
  // A bulk string holding CRLF is measured by its length, not by the line.
  assert.equal(respEnd(buf('$4\r\na\r\nb\r\n'), 0), 10);
  assert.equal(respEnd(buf('*2\r\n$1\r\nx\r\n*1\r\n:5\r\n'), 0), 19);
  assert.equal(respEnd(buf('%1\r\n+k\r\n+v\r\n'), 0), 12);
  assert.equal(respEnd(buf('_\r\n'), 0), 3);
});

test('respEnd says undefined while a value is incomplete', () => {
  for (const partial of ['', '+OK', '+OK\r', '$5\r\nab', '$5\r\nabcde\r', '*2\r\n:1\r\n', '*2\r\n$1\r\nx\r\n$3\r\nab']) {
    assert.equal(respEnd(buf(partial), 0), undefined, JSON.stringify(partial));
  }
});
