// The history checker catches each kind of anomaly in a hand-made history, and finds none in a
// clean one with the same shape (so every anomaly it reports on a real run means something).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory, type Anomaly, type History, type HttpEvent, type SocketRecord } from '../support/history.js';

let nextId = 1;
let clock = 0;

/** An event of `client` that took 10 ms, right after the previous one. */
function ev(client: string, op: HttpEvent['op'], status: number, fields: Partial<HttpEvent> = {}): HttpEvent {
  const start = fields.start ?? (clock += 20);
  return { id: nextId++, client, op, start, end: start + 10, status, sent: 'S1', got: 'S1', ...fields };
}

function socket(fields: Partial<SocketRecord>): SocketRecord {
  return { id: 1000 + nextId++, client: 'c1', session: 'S1', openedAt: 0, closedAt: null, closeCode: null, closedByClient: false, ...fields };
}

function check(events: HttpEvent[], extra: Partial<History> = {}): Anomaly[] {
  return checkHistory({ events, sockets: [], crashes: [], boundMs: 3000, ...extra });
}

function kinds(anomalies: Anomaly[]): string[] {
  return anomalies.map((anomaly) => anomaly.kind);
}

/** A clean life: a session created, adds (one 503 that did not land), a name, a login, a read, a logout. */
function cleanLife(): HttpEvent[] {
  return [
    ev('c1', 'add', 201, { sent: null, got: 'S1', sku: 'a', basket: [{ sku: 'a', qty: 1 }] }),
    ev('c1', 'add', 503, { sku: 'b' }),
    ev('c1', 'add', 201, { sku: 'c', basket: [{ sku: 'a', qty: 1 }, { sku: 'c', qty: 1 }] }),
    ev('c1', 'put-name', 200, { name: 'n1' }),
    ev('c1', 'login', 200, { got: 'S2', user: 'u1', observedName: 'n1', basket: [{ sku: 'a', qty: 1 }, { sku: 'c', qty: 1 }] }),
    ev('c1', 'read', 200, { sent: 'S2', got: 'S2', observedName: 'n1', basket: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 1 }, { sku: 'c', qty: 1 }] }),
    ev('c1', 'logout', 200, { sent: 'S2', got: null }),
    ev('c1', 'read', 200, { sent: null, got: 'S3', observedName: null, basket: [] }),
  ];
}

test('a clean history has no anomaly (a 503 add may land once, a login carries the data over)', () => {
  assert.deepEqual(check(cleanLife()), []);
});

test('an add answered 201 and applied twice is caught', () => {
  const anomalies = check([
    ev('c1', 'add', 201, { sent: null, got: 'S1', sku: 'a', basket: [{ sku: 'a', qty: 2 }] }),
  ]);
  assert.deepEqual(kinds(anomalies), ['applied-twice']);
  assert.match(anomalies[0]!.detail, /sku a with qty 2.*answered 201/);
});

test('an add answered 503 and applied twice is caught', () => {
  const anomalies = check([
    ev('c1', 'add', 503, { sent: 'S1', sku: 'a' }),
    ev('c1', 'read', 200, { basket: [{ sku: 'a', qty: 2 }], observedName: null }),
  ]);
  assert.deepEqual(kinds(anomalies), ['applied-twice']);
  assert.match(anomalies[0]!.detail, /answered 503/);
});

test('an acknowledged add missing from a later basket is caught', () => {
  assert.deepEqual(kinds(check([
    ev('c1', 'add', 201, { sku: 'a', basket: [{ sku: 'a', qty: 1 }] }),
    ev('c1', 'add', 201, { sku: 'b', basket: [{ sku: 'b', qty: 1 }] }),
  ])), ['acknowledged-add-lost']);
});

test('an acknowledged name overwritten by an older, unacknowledged one is caught', () => {
  assert.deepEqual(kinds(check([
    ev('c1', 'put-name', 503, { name: 'old' }),
    ev('c1', 'put-name', 200, { name: 'new' }),
    ev('c1', 'read', 200, { observedName: 'old', basket: [] }),
  ])), ['acknowledged-name-lost']);
  // A name sent after the acknowledged one may show (it may have landed late, or not at all).
  assert.deepEqual(check([
    ev('c1', 'put-name', 200, { name: 'new' }),
    ev('c1', 'put-name', 503, { name: 'newer' }),
    ev('c1', 'read', 200, { observedName: 'newer', basket: [] }),
  ]), []);
});

test("an item from another client's session is caught", () => {
  assert.deepEqual(kinds(check([
    ev('c2', 'add', 201, { sent: 'T1', got: 'T1', sku: 'x', basket: [{ sku: 'x', qty: 1 }] }),
    ev('c1', 'read', 200, { basket: [{ sku: 'x', qty: 1 }] }),
  ])), ['foreign-item']);
});

test('a session holding acknowledged data replaced though nothing ended it is caught; after a logout that got a 503 it is not', () => {
  assert.deepEqual(kinds(check([
    ev('c1', 'add', 201, { sku: 'a', basket: [{ sku: 'a', qty: 1 }] }),
    ev('c1', 'read', 200, { got: 'S9', basket: [] }),
  ])), ['session-lost']);
  assert.deepEqual(check([
    ev('c1', 'add', 201, { sku: 'a', basket: [{ sku: 'a', qty: 1 }] }),
    ev('c1', 'logout', 503),
    ev('c1', 'read', 200, { got: 'S9', basket: [] }),
  ]), []);
});

test('a request with a cookie whose session was logged out, renamed by login or destroyed with its user is caught when served', () => {
  // Logged out, then the old cookie replayed (as a stolen cookie would be).
  assert.deepEqual(kinds(check([
    ev('c1', 'logout', 200, { got: null }),
    ev('c9', 'stale', 200, { sent: 'S1', got: 'S1' }),
  ])), ['served-after-end']);
  // The pre-login id after the login.
  assert.deepEqual(kinds(check([
    ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null }),
    ev('c9', 'stale', 200, { sent: 'S1', got: 'S1' }),
  ])), ['served-after-end']);
  // A user's session after destroy-user, on its own client.
  assert.deepEqual(kinds(check([
    ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null }),
    ev('admin', 'destroy-user', 200, { sent: null, got: null, user: 'u1' }),
    ev('c1', 'read', 200, { sent: 'S2', got: 'S2', basket: [], observedName: null }),
  ])), ['served-after-end']);
  // A fresh session for the dead cookie is the right answer.
  assert.deepEqual(check([
    ev('c1', 'logout', 200, { got: null }),
    ev('c9', 'stale', 200, { sent: 'S1', got: 'S7' }),
  ]), []);
  // A login with a dead cookie whose answer shows the dead session's items.
  assert.deepEqual(kinds(check([
    ev('c1', 'add', 201, { sku: 'a', basket: [{ sku: 'a', qty: 1 }] }),
    ev('c1', 'logout', 200, { got: null }),
    ev('c9', 'stale', 200, { sent: 'S1', got: 'S8' }),
    { ...ev('c9', 'login', 200, { sent: 'S1', got: 'S8', user: 'u2', basket: [{ sku: 'a', qty: 1 }] }), op: 'stale' as const },
  ])), ['served-after-end']);
});

test('a socket of a logged-out or destroyed session still open a second after is caught', () => {
  clock = 100;
  const logout = ev('c1', 'logout', 200, { got: null });
  assert.deepEqual(kinds(checkHistory({
    events: [logout],
    sockets: [socket({ openedAt: 50, closedAt: logout.end + 1500, closeCode: 4401 })],
    crashes: [], boundMs: 3000,
  })), ['socket-open-after-end']);
  assert.deepEqual(checkHistory({
    events: [logout],
    sockets: [socket({ openedAt: 50, closedAt: logout.end + 300, closeCode: 4401 })],
    crashes: [], boundMs: 3000,
  }), []);
  // While the node's subscriber may be away (a cutting fault), the second counts from its return.
  const late = socket({ openedAt: 50, closedAt: logout.end + 1500, closeCode: 4401 });
  assert.deepEqual(checkHistory({ events: [logout], sockets: [late], crashes: [], boundMs: 3000, noticeOutages: [{ from: logout.start - 10, to: logout.end + 800 }] }), []);
  assert.deepEqual(kinds(checkHistory({ events: [logout], sockets: [late], crashes: [], boundMs: 3000, noticeOutages: [{ from: logout.start - 10, to: logout.end + 200 }] })), ['socket-open-after-end']);
  // Overlapping outages (a cut, then a restart while the node was still coming back): the one
  // that ends last counts, whichever began first (found on seed 771074402).
  const overlapping = [{ from: logout.start - 500, to: logout.end + 200 }, { from: logout.start - 10, to: logout.end + 800 }];
  assert.deepEqual(checkHistory({ events: [logout], sockets: [late], crashes: [], boundMs: 3000, noticeOutages: overlapping }), []);
  // The socket follows its session through a login, and closes when the user is destroyed.
  const login = ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null });
  const destroy = ev('admin', 'destroy-user', 200, { sent: null, got: null, user: 'u1' });
  assert.deepEqual(kinds(checkHistory({
    events: [login, destroy],
    sockets: [socket({ openedAt: login.start - 5, closedAt: null })],
    crashes: [], boundMs: 3000,
  })), ['socket-open-after-end']);
});

test('a socket closed with 4401 while its session lives on is caught', () => {
  assert.deepEqual(kinds(checkHistory({
    events: [ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null })],
    sockets: [socket({ openedAt: 0, closedAt: clock + 100, closeCode: 4401 })],
    crashes: [], boundMs: 3000,
  })), ['socket-closed-without-end']);
  // The same close after a login made while the node's subscriber may have been away (its notice
  // lost: pub/sub is at most once) is allowed: the node closes what it cannot follow.
  const login = ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null });
  const closed = socket({ openedAt: 0, closedAt: clock + 100, closeCode: 4401 });
  assert.deepEqual(checkHistory({ events: [login], sockets: [closed], crashes: [], boundMs: 3000, noticeOutages: [{ from: login.start - 100, to: login.start + 1000 }] }), []);
  assert.deepEqual(kinds(checkHistory({ events: [login], sockets: [closed], crashes: [], boundMs: 3000, noticeOutages: [{ from: login.end + 50, to: login.end + 1000 }] })), ['socket-closed-without-end'], 'an outage after the login excuses nothing');
});

test('an answer past the bound, an unexpected status and a crashed node are caught', () => {
  assert.deepEqual(kinds(check([ev('c1', 'read', 503, { start: 0, end: 3500 })])), ['over-bound']);
  assert.deepEqual(kinds(check([ev('c1', 'read', 500)])), ['unexpected-status']);
  assert.deepEqual(kinds(check([ev('c1', 'read', 0)])), ['unexpected-status']);
  assert.deepEqual(kinds(check([], { crashes: [{ at: 1, error: 'RangeError: Invalid WebSocket frame' }] })), ['node-crash']);
});

test('one broken promise is one anomaly, however many baskets show it afterwards', () => {
  assert.deepEqual(kinds(check([
    ev('c1', 'add', 201, { sku: 'a', basket: [{ sku: 'a', qty: 2 }] }),
    ev('c1', 'read', 200, { basket: [{ sku: 'a', qty: 2 }], observedName: null }),
    ev('c1', 'add', 201, { sku: 'b', basket: [{ sku: 'b', qty: 1 }] }),
    ev('c1', 'read', 200, { basket: [{ sku: 'b', qty: 1 }, { sku: 'c', qty: 1 }], observedName: null }),
  ])), ['applied-twice', 'acknowledged-add-lost', 'foreign-item']);
});

test('a destroy-user racing a login may end the new session (not session-lost); one over before the login began cannot', () => {
  clock = 10_000;
  const destroyEarly = ev('admin', 'destroy-user', 200, { sent: null, got: null, user: 'u1' });
  clock += 5000;
  const login = ev('c1', 'login', 200, { got: 'S2', user: 'u1', basket: [], observedName: null });
  const racing = { ...ev('admin', 'destroy-user', 200, { sent: null, got: null, user: 'u1' }), start: login.start + 2, end: login.end - 1 };
  const add = ev('c1', 'add', 201, { sent: 'S2', got: 'S2', sku: 'a', basket: [{ sku: 'a', qty: 1 }] });
  const replaced = ev('c1', 'read', 200, { sent: 'S2', got: 'S3', basket: [], observedName: null });
  assert.deepEqual(check([login, racing, replaced]), []);
  assert.deepEqual(kinds(check([destroyEarly, login, add, replaced])), ['session-lost']);
});
