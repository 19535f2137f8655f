// Per-key semantics of concurrent requests on one session, against the real Redis, through the
// SessionManager of two "app nodes" (two containers sharing a key prefix): named races first,
// then a model-based property test of random concurrent mixes of put/delete/update/clear.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { parseConfigText } from '../../src/config/load-config.js';
import type { KeepsakeConfig } from '../../src/config/schema.js';
import { createKeepsakeContainer, type KeepsakeContainer } from '../../src/container/wiring.js';
import { kSessionState, type SessionManager, type SessionRequest } from '../../src/session/session-manager.js';
import type { Session } from '../../src/session/session.js';
import type { SessionChanges } from '../../src/session/session-data.js';
import { testPrefix } from '../support/app-server.js';

/** SessionData with plain string keys (the demo app's declared SessionValues are in this program too). */
interface Data {
  get(key: string): any;
  put(key: string, value: unknown): Data;
  delete(key: string): Data;
  clear(): Data;
  update(key: string, fn: (current: any) => any): Promise<any>;
  toJSON(): Record<string, unknown>;
  changes(): SessionChanges;
}

const dataOf = (session: Session) => session.data as unknown as Data;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// config/app.ini with a per-file key prefix (read directly: this file needs no demo app).
function config(prefix: string, session: Record<string, unknown> = {}): KeepsakeConfig {
  const text = readFileSync(new URL('../../../config/app.ini', import.meta.url), 'utf8');
  return parseConfigText(text, 'config/app.ini', { env: {}, overrides: { session: { key_prefix: prefix, ...session } } });
}

const prefix = testPrefix('property');
const containers: KeepsakeContainer[] = [];
let nodes: SessionManager[];
let redis: Redis;

before(() => {
  for (let i = 0; i < 2; i++) containers.push(createKeepsakeContainer(config(prefix)));
  nodes = containers.map((container) => container.cradle.sessionManager);
  redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
});

after(async () => {
  await Promise.all(containers.map((container) => container.dispose()));
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

/** A request as the keepsake plugin leaves it: headers, and the empty session slot. */
function request(cookie?: string): SessionRequest {
  return { headers: { cookie }, [kSessionState]: null } as unknown as SessionRequest;
}

/** Creates a session holding `values`; returns the Cookie header that names it, and its id. */
async function createSession(manager: SessionManager, values: Record<string, unknown> = {}): Promise<{ cookie: string; id: string }> {
  const req = request();
  const session = await manager.start(req);
  for (const [key, value] of Object.entries(values)) dataOf(session).put(key, value);
  await manager.persistSession(req);
  const setCookie = manager.outgoingCookie(manager.stateOf(req)!);
  assert.ok(setCookie);
  return { cookie: setCookie.split(';')[0]!, id: session.id };
}

/** What a new request of this session sees (all data keys). */
async function current(manager: SessionManager, cookie: string): Promise<Record<string, unknown>> {
  const session = await manager.start(request(cookie));
  return dataOf(session).toJSON();
}

/** Two requests of one session that both loaded it before either persists. */
async function twoLoaded(values: Record<string, unknown>, [na, nb] = [0, 0]) {
  const { cookie } = await createSession(nodes[0]!, values);
  const ra = request(cookie);
  const rb = request(cookie);
  const a = await nodes[na]!.start(ra);
  const b = await nodes[nb]!.start(rb);
  return { cookie, a: dataOf(a), b: dataOf(b), persistA: () => nodes[na]!.persistSession(ra), persistB: () => nodes[nb]!.persistSession(rb) };
}

test('race: put vs put of different keys, both loaded before either persisted: both survive', async () => {
  for (const placement of [[0, 0], [0, 1]] as const) {
    const { cookie, a, b, persistA, persistB } = await twoLoaded({ name: 'old', theme: 'light' }, [...placement]);
    a.put('name', 'Ada');
    b.put('theme', 'dark');
    await persistA();
    await persistB();
    assert.deepEqual(await current(nodes[1]!, cookie), { name: 'Ada', theme: 'dark' });
  }
});

test('race: put vs put of the same key: the last writer wins', async () => {
  const { cookie, a, b, persistA, persistB } = await twoLoaded({ name: 'old' }, [0, 1]);
  a.put('name', 'first');
  b.put('name', 'second');
  await persistA();
  await persistB();
  assert.deepEqual(await current(nodes[0]!, cookie), { name: 'second' });
});

test('race: update vs update of the same key on two nodes: the loser re-runs fn on the fresh value, both applied', async () => {
  const { cookie, a, b } = await twoLoaded({ count: 1 }, [0, 1]);
  assert.equal(await a.update('count', (n: number) => n + 1), 2);
  const seen: number[] = [];
  assert.equal(await b.update('count', (n: number) => (seen.push(n), n + 10)), 12);
  assert.deepEqual(seen, [1, 2], "b's fn ran on its stale load, lost the compare-and-set, then ran on a's value");
  assert.deepEqual(await current(nodes[0]!, cookie), { count: 12 });
});

test('race: delete vs put of the same key: whichever persists last wins', async () => {
  let race = await twoLoaded({ name: 'old', keep: 1 }, [0, 1]);
  race.a.delete('name');
  race.b.put('name', 'new');
  await race.persistB();
  await race.persistA();
  assert.deepEqual(await current(nodes[0]!, race.cookie), { keep: 1 });
  race = await twoLoaded({ name: 'old', keep: 1 }, [0, 1]);
  race.a.delete('name');
  race.b.put('name', 'new');
  await race.persistA();
  await race.persistB();
  assert.deepEqual(await current(nodes[0]!, race.cookie), { name: 'new', keep: 1 });
});

test('race: clear vs update: a clear persisted later removes the update; an update after the clear survives alone', async () => {
  let race = await twoLoaded({ count: 1, name: 'old' }, [0, 1]);
  race.a.clear();
  assert.equal(await race.b.update('count', (n: number) => n + 1), 2);
  await race.persistA();
  assert.deepEqual(await current(nodes[0]!, race.cookie), {});
  race = await twoLoaded({ count: 1, name: 'old' }, [0, 1]);
  race.a.clear();
  await race.persistA();
  assert.equal(await race.b.update('count', (n?: number) => (n ?? 0) + 1), 1, 'the update saw the cleared key');
  assert.deepEqual(await current(nodes[0]!, race.cookie), { count: 1 });
});

test('race: a nested mutation counts as a put of that key (last writer wins over a concurrent update)', async () => {
  const { cookie, a, b, persistA } = await twoLoaded({ list: ['x'] }, [0, 1]);
  a.get('list').push('mutated');
  await b.update('list', (list: string[]) => [...list, 'updated']);
  await persistA();
  assert.deepEqual(await current(nodes[0]!, cookie), { list: ['x', 'mutated'] });
});

test('race: an update that refuses or changes nothing re-reads a stale value before answering', async () => {
  // a loaded the basket before b added 'x'; removing 'x' must find it, not answer "not found".
  const { cookie, a, b } = await twoLoaded({ basket: [] }, [0, 1]);
  await b.update('basket', (items: string[]) => [...items, 'x']);
  const seen: string[][] = [];
  const removed = await a.update('basket', (items: string[]) => {
    seen.push(items);
    if (!items.includes('x')) throw new Error('not found');
    return items.filter((item) => item !== 'x');
  });
  assert.deepEqual(removed, []);
  assert.deepEqual(seen, [[], ['x']]);
  assert.deepEqual(await current(nodes[0]!, cookie), { basket: [] });
  // An update that changes nothing returns the value stored now, not the stale one.
  const race = await twoLoaded({ name: 'old' }, [0, 1]);
  await race.b.update('name', () => 'new');
  assert.equal(await race.a.update('name', (name: string) => name), 'new');
  assert.equal(race.a.get('name'), 'new');
});

test('race: an update that keeps losing until update_timeout_ms runs out fails with 409 ERR_SESSION_CONFLICT, nothing written', async () => {
  const shortPrefix = testPrefix('property-budget');
  const short = createKeepsakeContainer(config(shortPrefix, { update_timeout_ms: 50 }));
  const other = createKeepsakeContainer(config(shortPrefix));
  try {
    const { cookie } = await createSession(short.cradle.sessionManager, { count: 0 });
    const loser = dataOf(await short.cradle.sessionManager.start(request(cookie)));
    const rival = dataOf(await other.cradle.sessionManager.start(request(cookie)));
    let rivalWrites = 0;
    // While the loser's fn runs, another node changes the key: every compare-and-set fails.
    const error = await loser
      .update('count', async (n: number) => {
        await rival.update('count', (m: number) => m + 1);
        rivalWrites++;
        await sleep(10);
        return n + 1000;
      })
      .catch((caught: unknown) => caught);
    assert.equal((error as { code: string }).code, 'ERR_SESSION_CONFLICT');
    assert.equal((error as { statusCode: number }).statusCode, 409);
    assert.ok(rivalWrites >= 2, `the loser retried (${rivalWrites} attempts)`);
    assert.deepEqual(await current(other.cradle.sessionManager, cookie), { count: rivalWrites }, "only the rival's increments are stored");
  } finally {
    await Promise.all([short.dispose(), other.dispose()]);
    const keys = await redis.keys(`${shortPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
});

// ---------------------------------------------------------------------------------------------
// The model. Counters ("c…") are only ever changed by update(+1); lists ("l…") by put([token]),
// update(append token), guarded update (refuses an absent list), a no-op update, delete, and a
// nested mutation (get + push). clear() removes everything. Every token is unique, so a list
// value names the writes that made it, and a list state never recurs.

type Op =
  | { kind: 'inc'; key: string }
  | { kind: 'append' | 'guarded' | 'noop' | 'put' | 'delete' | 'mutate'; key: string }
  | { kind: 'clear' }
  | { kind: 'pause'; ms: number };

interface ClientPlan {
  node: number;
  delay: number;
  ops: Op[];
}

interface Scenario {
  initial: Record<string, unknown>;
  clients: ClientPlan[];
}

const COUNTERS = ['c0', 'c1'];
const LISTS = ['l0', 'l1', 'l2'];

const opArb = (clears: boolean): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('inc' as const), key: fc.constantFrom(...COUNTERS) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('append' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('guarded' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('noop' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('mutate' as const), key: fc.constantFrom(...LISTS) }) },
    { weight: clears ? 1 : 0, arbitrary: fc.constant({ kind: 'clear' as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 3 }) }) },
  );

const scenarioArb: fc.Arbitrary<Scenario> = fc.boolean().chain((clears) =>
  fc.record({
    initial: fc.record(
      {
        c0: fc.integer({ min: 1, max: 5 }), // 0 would read like "absent" to the model
        c1: fc.integer({ min: 1, max: 5 }),
        l0: fc.constant(['init-l0']),
        l1: fc.constant(['init-l1']),
        l2: fc.constant(['init-l2']),
      },
      { requiredKeys: [] },
    ),
    clients: fc.array(
      fc.record({ node: fc.integer({ min: 0, max: 1 }), delay: fc.integer({ min: 0, max: 4 }), ops: fc.array(opArb(clears), { minLength: 1, maxLength: 6 }) }),
      { minLength: 2, maxLength: 5 },
    ),
  }),
);

/** What happened in one run, as the clients saw it. */
interface UpdateRecord {
  key: string;
  /** The value update() returned (a copy), or 'refused'. */
  result: unknown;
  /** Applied to this request's own pending change (written by its persist), not to the store. */
  local: boolean;
  kind: 'inc' | 'append' | 'guarded' | 'noop';
  /** When the call began and when it answered (performance.now()). */
  span: Span;
}

/** A write took effect somewhere between `start` and `end`. */
interface Span {
  start: number;
  end: number;
}

interface RunRecord {
  updates: UpdateRecord[];
  persists: SessionChanges[];
  /** When each persist (same index) began and answered. */
  persistSpans: Span[];
}

class Refused extends Error {}

async function runClient(plan: ClientPlan, index: number, cookie: string, record: RunRecord): Promise<void> {
  await sleep(plan.delay);
  const manager = nodes[plan.node]!;
  const req = request(cookie);
  const data = dataOf(await manager.start(req));
  const pending = new Set<string>(); // keys this request changed itself (put, delete, mutate)
  let cleared = false;
  let n = 0;
  const token = () => `t${index}.${n++}`;
  for (const op of plan.ops) {
    switch (op.kind) {
      case 'pause':
        await sleep(op.ms);
        break;
      case 'clear':
        data.clear();
        cleared = true;
        pending.clear(); // what this request changed before is gone with the rest
        break;
      case 'put':
        data.put(op.key, [token()]);
        pending.add(op.key);
        break;
      case 'delete':
        data.delete(op.key);
        pending.add(op.key);
        break;
      case 'mutate': {
        const list = data.get(op.key);
        if (Array.isArray(list)) {
          list.push(token());
          pending.add(op.key);
        }
        break;
      }
      default: {
        const local = cleared || pending.has(op.key);
        const t = token();
        const fn =
          op.kind === 'inc'
            ? (count?: number) => (count ?? 0) + 1
            : op.kind === 'append'
              ? (list?: string[]) => [...(list ?? []), t]
              : op.kind === 'guarded'
                ? (list?: string[]) => {
                    if (list === undefined) throw new Refused();
                    return [...list, t];
                  }
                : (list?: string[]) => list;
        let result: unknown;
        const start = performance.now();
        try {
          result = structuredClone(await data.update(op.key, fn));
        } catch (error) {
          if (!(error instanceof Refused)) throw error;
          result = 'refused';
        }
        record.updates.push({ key: op.key, result, local, kind: op.kind, span: { start, end: performance.now() } });
        if (local) pending.add(op.key);
      }
    }
  }
  const changes = data.changes();
  // Per key: the persist writes only what this request changed itself, never a stale copy of the rest.
  for (const key of [...changes.sets.keys(), ...changes.deletes]) assert.ok(pending.has(key), `persist would write ${key}, which this request did not change`);
  const start = performance.now();
  await manager.persistSession(req);
  record.persists.push(changes);
  record.persistSpans.push({ start, end: performance.now() });
}

const show = (value: unknown) => (value === undefined ? 'absent' : JSON.stringify(value));

/**
 * Checks the final value of every key against per-key linearizability: each key's history is
 * some order of its writes (store-side updates, and the puts/deletes/clears each persist wrote),
 * where every update was applied to a state that really existed, no state fed two updates more
 * often than it occurred (a lost update), and the final value is the last write's.
 */
function check(scenario: Scenario, record: RunRecord, final: Record<string, unknown>): void {
  for (const key of [...COUNTERS, ...LISTS]) {
    const initial = scenario.initial[key as keyof Scenario['initial']];
    // Results of every write of this key; `undefined` = a delete or clear.
    const writes: unknown[] = [];
    const spans: Span[] = [];
    const updates = record.updates.filter((update) => update.key === key);
    const storeWrites = updates.filter((update) => !update.local && update.kind !== 'noop' && update.result !== 'refused');
    for (const update of storeWrites) {
      writes.push(update.result);
      spans.push(update.span);
    }
    record.persists.forEach((changes, i) => {
      const bytes = changes.sets.get(key);
      if (bytes !== undefined) writes.push(decode(bytes));
      else if (changes.cleared || changes.deletes.includes(key)) writes.push(undefined);
      else return;
      spans.push(record.persistSpans[i]!);
    });
    const occurrences = (state: unknown) => [initial, ...writes].filter((value) => show(value) === show(state)).length;
    const context = () => `key ${key}: initial ${show(initial)}, final ${show(final[key])}, updates ${JSON.stringify(updates)}, writes ${writes.map(show).join(' ')}`;

    // The final value is the last write's (or the initial one when nothing wrote). Which write was
    // last is known up to concurrency: one that answered before another began cannot be last.
    if (writes.length === 0) assert.equal(show(final[key]), show(initial), context());
    else {
      const last = writes.filter((_, i) => !spans.some((other, j) => j !== i && spans[i]!.end < other.start));
      assert.ok(last.some((value) => show(value) === show(final[key])), `final value is not the result of a write that may have been last (${last.map(show).join(' ')}): ${context()}`);
    }

    // Every store-side update was applied to a state that existed, each state used at most as often as it occurred.
    const predecessors = new Map<string, number>();
    for (const update of storeWrites) {
      const before = COUNTERS.includes(key) ? (update.result as number) - 1 : (update.result as string[]).slice(0, -1);
      const state = before === 0 || (Array.isArray(before) && before.length === 0) ? undefined : before;
      const seen = (predecessors.get(show(state)) ?? 0) + 1;
      predecessors.set(show(state), seen);
      assert.ok(seen <= occurrences(state), `update applied to ${show(state)} ${seen}× but that state occurred ${occurrences(state)}× (lost update): ${context()}`);
    }
    // A no-op or refusing update answered on a state that existed.
    for (const update of updates.filter((u) => !u.local && (u.kind === 'noop' || u.result === 'refused'))) {
      const state = update.result === 'refused' ? undefined : update.result;
      assert.ok(occurrences(state) > 0, `${update.kind} update saw ${show(state)}, a state that never existed: ${context()}`);
    }
    // Nobody replaced or removed the key: every update survives, in order. For counters this is
    // "the counter equals the number of increments".
    const overwritten = record.persists.some((changes) => changes.cleared || changes.sets.has(key) || changes.deletes.includes(key));
    if (!overwritten) {
      if (COUNTERS.includes(key)) {
        const base = (initial as number | undefined) ?? 0;
        assert.equal(final[key] ?? 0, base + storeWrites.length, `counter lost increments: ${context()}`);
        const results = storeWrites.map((update) => update.result as number).sort((x, y) => x - y);
        assert.deepEqual(results, storeWrites.map((_, i) => base + i + 1), `each increment saw a distinct value: ${context()}`);
      } else {
        const list = (final[key] ?? []) as string[];
        assert.equal(list.length, ((initial as string[] | undefined) ?? []).length + storeWrites.length, `list lost appends: ${context()}`);
        for (const update of storeWrites) assert.deepEqual(list.slice(0, (update.result as string[]).length), update.result, context());
      }
    }
  }
}

const decode = (bytes: Buffer) => containers[0]!.cradle.valueCodec.decode(bytes);

test('model: random concurrent mixes of put/delete/update/clear from several requests on two nodes are per-key linearizable', async () => {
  let runs = 0;
  let withClear = 0;
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (scenario) => {
      runs++;
      const { cookie, id } = await createSession(nodes[0]!, scenario.initial);
      const record: RunRecord = { updates: [], persists: [], persistSpans: [] };
      await Promise.all(scenario.clients.map((plan, index) => runClient(plan, index, cookie, record)));
      const final = await current(nodes[1]!, cookie);
      if (record.persists.some((changes) => changes.cleared)) withClear++;
      await containers[0]!.cradle.sessionStore.destroy(id);
      check(scenario, record, final);
    }),
    { numRuns: 80, endOnFailure: true },
  );
  assert.ok(withClear > 0 && withClear < runs, `both kinds of runs happened (${withClear} of ${runs} with a clear)`);
});
