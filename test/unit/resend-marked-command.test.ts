// The write command marks itself when ioredis writes it a second time without an answer in
// between (a re-send after a lost reply), and not when Redis answered with a redirection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplyError as ReplyErrorClass } from 'ioredis';
import { ResendMarkedCommand, RESEND_MARK } from '../../src/redis/resend-marked-command.js';

/** The error class ioredis's parser gives Redis's error replies (typed `any` by ioredis). */
const ReplyError = ReplyErrorClass as new (message: string) => Error;
const header = '4194304:op1';
const bytes = (command: ResendMarkedCommand) => String(command.toWritable({}));
const fresh = () => {
  const command = new ResendMarkedCommand(['ks5_w', 1, 'key', header, 'd:a', '1'], 3);
  command.promise.catch(() => undefined);
  return command;
};

test('the first write is as built; a second write with no answer carries the mark', () => {
  const command = fresh();
  assert.ok(bytes(command).includes(`$${header.length}\r\n${header}\r\n`));
  const again = bytes(command);
  assert.ok(again.includes(`${RESEND_MARK}${header}\r\n`), again);
  assert.ok(bytes(command).includes(`\r\n${RESEND_MARK}${header}\r\n`), 'marked once, not twice');
});

test('a redirection answered by Redis (MOVED, as a Cluster handles it) is sent unmarked', () => {
  const command = fresh();
  // What ioredis's Cluster does: keep the handler, install its own that sends the command elsewhere.
  const original = command.reject;
  let redirected = false;
  command.reject = (error: Error) => {
    if (/^MOVED/.test(error.message)) redirected = true;
    else original(error);
  };
  bytes(command);
  command.reject(new ReplyError('MOVED 3999 127.0.0.1:7001'));
  assert.equal(redirected, true);
  assert.ok(!bytes(command).includes(`${RESEND_MARK}${header}`), 'not a re-send');
});

test('a timeout or a closed connection is no answer: the next write is a re-send', () => {
  const command = fresh();
  bytes(command);
  command.reject(new Error('Command timed out'));
  assert.ok(bytes(command).includes(`${RESEND_MARK}${header}`));
});

test('with no header to mark (a destroy), a second write keeps its bytes and says it was sent again', () => {
  const command = new ResendMarkedCommand(['ks5_destroy', 1, 'key', 'notice'], -1);
  command.promise.catch(() => undefined);
  const first = bytes(command);
  assert.equal(command.resent, false, 'one write: not a re-send');
  assert.equal(bytes(command), first, 'the same bytes: nothing marked');
  assert.equal(command.resent, true);
});
