/**
 * @module The history checker's workload: a throwaway Redis (`appendonly yes`, `appendfsync
 * always`) behind a FaultProxy, two demo-app nodes on it, many clients doing random session
 * operations over both nodes while faults are injected, every request and socket recorded, then
 * the history checked (history.ts). Seeded: the same seed gives the same operations and faults
 * (their timing still depends on the machine). Used by test/fault/history-checker.test.ts (about
 * a minute) and bench/history.ts (longer).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { createKeepsake, type Keepsake } from '../../src/index.js';
import { startApp, testPrefix, type TestApp } from './app-server.js';
import { SENTINEL_FAULTS, STANDALONE_FAULTS, startBackend, type Backend, type FaultKind, type Topology } from './history-backends.js';
import { checkHistory, countByKind, type Anomaly, type History, type HttpEvent, type Item, type OpKind, type SocketRecord } from './history.js';
import { sleep } from './redis-server.js';

export { isWriteCall, type FaultKind, type Topology } from './history-backends.js';

export interface RunOptions {
  readonly seed: number;
  /** How long clients run and faults are injected. */
  readonly durationMs: number;
  /** @default 10 */
  readonly clients?: number;
  /** Distinct usernames clients log in as (several sessions per user). @default 4 */
  readonly users?: number;
  /** A standalone Redis behind a fault proxy, or a Sentinel group. @default 'standalone' */
  readonly topology?: Topology;
  /** @default every fault the topology offers */
  readonly faults?: readonly FaultKind[];
  /** Pause between two faults, drawn between these (ms). @default [1200, 3000] */
  readonly faultGapMs?: readonly [number, number];
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export interface RunFigures {
  readonly topology: Topology;
  readonly seed: number;
  readonly seconds: number;
  readonly operations: number;
  /** "op status" -> count */
  readonly answers: Record<string, number>;
  readonly faults: Record<string, number>;
  readonly sockets: { opened: number; closedByServer: Record<string, number> };
  readonly anomalies: Record<string, number>;
  /** How late the process's event loop ran (the nodes and the clients share it): p99 and max, ms. */
  readonly eventLoopDelayMs: { p99: number; max: number };
}

export interface RunResult {
  readonly history: History;
  /** Every fault injected and when (same clock as the history), to line anomalies up with them. */
  readonly faultLog: readonly { at: number; kind: string }[];
  readonly anomalies: Anomaly[];
  readonly figures: RunFigures;
}

const ACQUIRE_MS = 500;
const COMMAND_MS = 1000;
/** acquire_timeout_ms + command_timeout_ms + a margin for a loaded machine (as in redis-faults.test.ts). */
export const BOUND_MS = ACQUIRE_MS + COMMAND_MS + 1500;
/** A request with no answer by then is recorded with status 0. */
const CLIENT_TIMEOUT_MS = 10_000;
const COOKIE = 'dmsession';

/** mulberry32: small, fast and good enough to draw operations from a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seed from KEEPSAKE_CHECKER_SEED, or a fresh one. */
export function seedFromEnv(): number {
  const text = process.env.KEEPSAKE_CHECKER_SEED;
  if (text !== undefined && text !== '') {
    const seed = Number(text);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`KEEPSAKE_CHECKER_SEED must be a non-negative integer (got '${text}')`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

/** Fault kinds from KEEPSAKE_CHECKER_FAULTS (comma separated), or undefined: every one the topology offers. */
export function faultsFromEnv(topology: Topology = 'standalone'): readonly FaultKind[] | undefined {
  const text = process.env.KEEPSAKE_CHECKER_FAULTS;
  if (text === undefined || text.trim() === '') return undefined;
  const known = topology === 'sentinel' ? SENTINEL_FAULTS : STANDALONE_FAULTS;
  const kinds = text.split(',').map((kind) => kind.trim());
  for (const kind of kinds) {
    if (!(known as readonly string[]).includes(kind)) throw new Error(`KEEPSAKE_CHECKER_FAULTS: '${kind}' is not a fault of the ${topology} topology (known: ${known.join(', ')})`);
  }
  return kinds as FaultKind[];
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (random: () => number, [low, high]: readonly [number, number]): number => low + Math.floor(random() * (high - low));

function cookieId(value: string | undefined): string | null {
  return value === undefined ? null : decodeURIComponent(value).split('.')[0] ?? null;
}

interface Answer {
  status: number;
  body: any;
  errorCode?: string;
}

/** One HTTP request with `cookie` (name=value) and a time limit; returns the new cookie value (null: cleared, undefined: unchanged). */
async function send(url: string, method: string, cookie: string | undefined, body?: unknown): Promise<Answer & { cookie: string | null | undefined }> {
  try {
    const response = await fetch(url, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie === undefined ? {} : { cookie: `${COOKIE}=${cookie}` }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    let next: string | null | undefined;
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';');
      const at = pair!.indexOf('=');
      if (pair!.slice(0, at).trim() !== COOKIE) continue;
      const value = pair!.slice(at + 1).trim();
      next = value === '' || attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute)) ? null : value;
    }
    const text = await response.text();
    let parsed: any;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed, errorCode: parsed?.error?.code, cookie: next };
  } catch (error) {
    return { status: 0, body: undefined, errorCode: (error as Error).name, cookie: undefined };
  }
}

interface LiveSocket {
  readonly record: { -readonly [K in keyof SocketRecord]: SocketRecord[K] };
  readonly ws: WebSocket;
  closing: boolean;
}

/** Everything the run records; turned into a History at the end. */
class Recorder {
  readonly events: HttpEvent[] = [];
  readonly sockets: LiveSocket[] = [];
  readonly crashes: { at: number; error: string }[] = [];
  readonly faults: Record<string, number> = {};
  readonly faultLog: { at: number; kind: string }[] = [];
  #nextId = 1;

  id(): number {
    return this.#nextId++;
  }

  fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
    this.faultLog.push({ at: performance.now(), kind });
  }
}

/** One simulated visitor: one cookie, one request at a time, to either node. */
class Visitor {
  cookie: string | undefined;
  /** The `user` of the current session's view, once seen (to tell a socket got this session). */
  viewUser: string | undefined;
  readonly pastCookies: string[] = [];
  readonly sockets: LiveSocket[] = [];
  #seq = 0;

  constructor(
    readonly name: string,
    private readonly random: () => number,
    private readonly nodes: readonly TestApp[],
    private readonly users: number,
    private readonly recorder: Recorder,
  ) {}

  async step(): Promise<void> {
    const roll = this.random();
    const node = Math.floor(this.random() * this.nodes.length);
    if (roll < 0.34) await this.add(node);
    else if (roll < 0.48) await this.putName(node);
    else if (roll < 0.62) await this.read(node);
    else if (roll < 0.7) await this.login(node);
    else if (roll < 0.75) await this.logout(node);
    else if (roll < 0.84) await this.openSocket(node);
    else if (roll < 0.9) this.closeSocket();
    else await this.stale(node);
  }

  add(node: number): Promise<void> {
    const sku = `${this.name}-${++this.#seq}`;
    return this.http(node, 'add', 'POST', '/api/basket/items', { sku, qty: 1 }, { sku }, (body) => ({ basket: items(body?.items) }));
  }

  putName(node: number): Promise<void> {
    const name = `${this.name}-n${++this.#seq}`;
    return this.http(node, 'put-name', 'PUT', '/api/name', { name }, { name }, () => ({}));
  }

  read(node: number): Promise<void> {
    return this.http(node, 'read', 'GET', '/api/session', undefined, {}, (body) => this.view(body));
  }

  login(node: number): Promise<void> {
    const user = `u${Math.floor(this.random() * this.users)}`;
    return this.http(node, 'login', 'POST', '/api/login', { username: user }, { user }, (body) => this.view(body));
  }

  logout(node: number): Promise<void> {
    return this.http(node, 'logout', 'POST', '/api/logout', {}, {}, () => ({}));
  }

  /** A cookie this visitor held before, sent again (as a copied or stolen cookie would be). */
  async stale(node: number): Promise<void> {
    if (this.pastCookies.length === 0) return this.read(node);
    const cookie = pick(this.random, this.pastCookies);
    const start = performance.now();
    const answer = await send(`${this.nodes[node]!.url}/api/session`, 'GET', cookie, undefined);
    const sent = cookieId(cookie);
    const got = answer.cookie === undefined ? sent : cookieId(answer.cookie ?? undefined);
    this.recorder.events.push({
      id: this.recorder.id(), client: this.name, op: 'stale', node: nodeName(node), start, end: performance.now(),
      status: answer.status, errorCode: answer.errorCode, sent, got, ...(answer.status === 200 ? { basket: items(answer.body?.basket), observedName: answer.body?.name ?? null } : {}),
    });
  }

  async openSocket(node: number): Promise<void> {
    // Only a socket whose hello shows this session's user is known to follow the session.
    if (this.cookie === undefined || this.viewUser === undefined || this.sockets.length >= 2) return this.read(node);
    const session = cookieId(this.cookie);
    const expectedUser = this.viewUser;
    const ws = new WebSocket(`${this.nodes[node]!.url.replace(/^http/, 'ws')}/ws`, { headers: { cookie: `${COOKIE}=${this.cookie}` }, handshakeTimeout: 5000 });
    const record: LiveSocket['record'] = { id: this.recorder.id(), client: this.name, node: nodeName(node), session: null, openedAt: 0, closedAt: null, closeCode: null, closedByClient: false };
    const live: LiveSocket = { record, ws, closing: false };
    ws.on('error', () => undefined);
    const hello = await new Promise<any>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 5000);
      ws.on('message', (data) => {
        let message: any;
        try {
          message = JSON.parse(String(data));
        } catch {
          return;
        }
        if (message?.type === 'hello') {
          clearTimeout(timer);
          resolve(message);
        }
      });
      ws.once('close', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    if (hello === undefined) {
      ws.terminate();
      return;
    }
    record.openedAt = performance.now();
    record.session = hello.user === expectedUser ? session : null;
    ws.once('close', (code) => {
      record.closedAt = performance.now();
      record.closeCode = code;
      record.closedByClient = live.closing && code !== 4401;
      this.sockets.splice(this.sockets.indexOf(live), 1);
    });
    if (ws.readyState !== WebSocket.OPEN) return;
    this.sockets.push(live);
    this.recorder.sockets.push(live);
  }

  closeSocket(): void {
    const live = this.sockets.length === 0 ? undefined : pick(this.random, this.sockets);
    if (!live) return;
    live.closing = true;
    live.ws.close();
  }

  private view(body: any): Partial<HttpEvent> {
    this.viewUser = typeof body?.user === 'string' ? body.user : undefined;
    return { basket: items(body?.basket), observedName: body?.name ?? null };
  }

  private async http(node: number, op: OpKind, method: string, path: string, body: unknown, fields: Partial<HttpEvent>, observe: (body: any) => Partial<HttpEvent>): Promise<void> {
    const before = this.cookie;
    const start = performance.now();
    const answer = await send(this.nodes[node]!.url + path, method, before, body);
    const end = performance.now();
    if (answer.cookie !== undefined) {
      if (before !== undefined && cookieId(before) !== cookieId(answer.cookie ?? undefined)) this.pastCookies.push(before);
      if (cookieId(before) !== cookieId(answer.cookie ?? undefined)) this.viewUser = undefined;
      this.cookie = answer.cookie ?? undefined;
    }
    const ok = answer.status >= 200 && answer.status < 300;
    this.recorder.events.push({
      id: this.recorder.id(), client: this.name, op, node: nodeName(node), start, end, status: answer.status, errorCode: answer.errorCode,
      sent: cookieId(before), got: cookieId(this.cookie), ...fields, ...(ok ? observe(answer.body) : {}),
    });
  }
}

function items(value: unknown): Item[] {
  return Array.isArray(value) ? value.map((item: any) => ({ sku: String(item?.sku), qty: Number(item?.qty) })) : [];
}

function nodeName(index: number): string {
  return String.fromCharCode(65 + index);
}

/** Runs the workload with faults, checks the history, and stops every process it started. */
export async function runHistory(options: RunOptions): Promise<RunResult> {
  const log = options.log ?? (() => undefined);
  const recorder = new Recorder();
  const onCrash = (error: unknown): void => {
    recorder.crashes.push({ at: performance.now(), error: error instanceof Error ? error.stack ?? error.message : String(error) });
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  const backend = await startBackend(options.topology ?? 'standalone');
  const nodes: TestApp[] = [];
  let admin: Keepsake | undefined;
  let stopped = false;
  try {
    const prefix = testPrefix('history');
    const overrides = {
      session: { key_prefix: prefix },
      redis_connection_pool: { default: { ...backend.pool, acquire_timeout_ms: String(ACQUIRE_MS), command_timeout_ms: String(COMMAND_MS) } },
    };
    nodes.push(await startApp(overrides), await startApp(overrides));
    admin = await createKeepsake(nodes[0]!.config);
    const users = options.users ?? 4;
    const visitors = Array.from({ length: options.clients ?? 10 }, (_, i) => new Visitor(`c${i}`, seededRandom(options.seed * 1000 + i + 1), nodes, users, recorder));

    const began = performance.now();
    const deadline = began + options.durationMs;
    const running = () => !stopped && performance.now() < deadline;

    const clientLoops = visitors.map(async (visitor, i) => {
      const think = seededRandom(options.seed * 7919 + i);
      while (running()) {
        await visitor.step();
        await sleep(Math.floor(think() * 20));
      }
    });

    const adminRandom = seededRandom(options.seed * 31 + 5);
    const adminLoop = (async () => {
      while (running()) {
        await sleep(between(adminRandom, [2000, 5000]));
        if (!running()) break;
        const user = `u${Math.floor(adminRandom() * users)}`;
        const start = performance.now();
        let status = 200;
        let errorCode: string | undefined;
        try {
          await admin!.sessionManager.destroyUser(user);
        } catch (error) {
          status = 503;
          errorCode = (error as { code?: string }).code ?? (error as Error).name;
        }
        recorder.events.push({ id: recorder.id(), client: 'admin', op: 'destroy-user', start, end: performance.now(), status, errorCode, sent: null, got: null, user });
      }
    })();

    const faultLoop = injectFaults(options, backend, running, recorder, log);

    await Promise.all([...clientLoops, adminLoop, faultLoop]);
    log(`load done after ${Math.round((performance.now() - began) / 1000)} s; settling`);

    // Faults are over: every node must answer again, then every visitor reads its session once more.
    for (const node of nodes) {
      const settleBy = performance.now() + 10_000;
      while ((await send(`${node.url}/ready`, 'GET', undefined)).status !== 200 && performance.now() < settleBy) await sleep(100);
    }
    await Promise.all(visitors.map(async (visitor, i) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        await visitor.read(i % nodes.length);
        if (recorder.events.at(-1)?.status === 200) break;
      }
    }));
    // Sockets of the last logouts get their second to close before the observation ends.
    await sleep(1200);
    const observedUntil = performance.now();
    const history: History = {
      events: recorder.events,
      sockets: recorder.sockets.map((live) => ({ ...live.record })),
      crashes: recorder.crashes,
      boundMs: BOUND_MS,
      socketCloseMs: 1000,
      observedUntil,
      noticeOutages: noticeOutages(recorder.faultLog),
    };
    const anomalies = checkHistory(history);
    return { history, faultLog: recorder.faultLog, anomalies, figures: figures(options, recorder, backend, history, anomalies, (observedUntil - began) / 1000, loopDelay) };
  } finally {
    stopped = true;
    backend.calm();
    for (const live of recorder.sockets) live.ws.terminate();
    await Promise.allSettled([admin?.close(), ...nodes.map((node) => node.close())]);
    await backend.stop();
    loopDelay.disable();
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
}

async function injectFaults(options: RunOptions, backend: Backend, running: () => boolean, recorder: Recorder, log: (line: string) => void): Promise<void> {
  const random = seededRandom(options.seed * 131 + 17);
  // Lost replies are what the other faults do not produce: make them half of all faults.
  const enabled = options.faults ?? backend.kinds;
  const kinds = enabled.includes('reply-lost') ? [...enabled, ...enabled.map(() => 'reply-lost' as const)] : [...enabled];
  if (kinds.length === 0) return;
  await sleep(1000);
  while (running()) {
    const kind = pick(random, kinds);
    try {
      await backend.inject(kind, random, (what) => recorder.fault(what));
    } catch (error) {
      log(`fault ${kind} failed: ${(error as Error).message.split('\n')[0]}`);
    }
    await sleep(between(random, options.faultGapMs ?? [1200, 3000]));
  }
}

function figures(options: RunOptions, recorder: Recorder, backend: Backend, history: History, anomalies: Anomaly[], seconds: number, loopDelay: { percentile(p: number): number; max: number }): RunFigures {
  const answers: Record<string, number> = {};
  for (const event of history.events) answers[`${event.op} ${event.status}`] = (answers[`${event.op} ${event.status}`] ?? 0) + 1;
  const closedByServer: Record<string, number> = {};
  for (const socket of history.sockets) {
    if (socket.closedAt !== null && !socket.closedByClient) closedByServer[String(socket.closeCode)] = (closedByServer[String(socket.closeCode)] ?? 0) + 1;
  }
  return {
    topology: options.topology ?? 'standalone',
    seed: options.seed,
    seconds: Math.round(seconds),
    operations: history.events.length,
    answers,
    faults: { ...recorder.faults, ...backend.figures() },
    sockets: { opened: history.sockets.length, closedByServer },
    anomalies: countByKind(anomalies),
    eventLoopDelayMs: { p99: Math.round(loopDelay.percentile(99) / 1e6), max: Math.round(loopDelay.max / 1e6) },
  };
}

/** The figures and the anomalies as text, for the test's diagnostics and the bench's report. */
export function report(result: RunResult, maxDetails = 40): string {
  const { figures, anomalies } = result;
  const lines = [
    `${figures.topology}, seed ${figures.seed} (replay: KEEPSAKE_CHECKER_SEED=${figures.seed}), ${figures.seconds} s`,
    `operations: ${figures.operations} (${Object.entries(figures.answers).sort().map(([key, count]) => `${key}: ${count}`).join(', ')})`,
    `faults: ${Object.entries(figures.faults).sort().map(([key, count]) => `${key}: ${count}`).join(', ')}`,
    `sockets: ${figures.sockets.opened} opened; closed by the server: ${JSON.stringify(figures.sockets.closedByServer)}`,
    // (Histories recorded before this figure existed have none.)
    ...(figures.eventLoopDelayMs ? [`event loop delay of the test process (nodes and clients): p99 ${figures.eventLoopDelayMs.p99} ms, max ${figures.eventLoopDelayMs.max} ms`] : []),
    `anomalies: ${anomalies.length}${anomalies.length === 0 ? '' : ` (${Object.entries(figures.anomalies).map(([key, count]) => `${key}: ${count}`).join(', ')})`}`,
    ...anomalies.slice(0, maxDetails).map((anomaly) => `  - ${anomaly.kind}: ${anomaly.detail}`),
    ...(anomalies.length > maxDetails ? [`  … and ${anomalies.length - maxDetails} more`] : []),
  ];
  return lines.join('\n');
}

/** Faults that cut the nodes' subscriber connections, and how long their reconnect may take. */
const CUTTING_FAULTS = /^(client-kill|redis-restart|sigstop|cut-all|sentinel-failover)/;
const NOTICE_OUTAGE_MS = 4000;
/**
 * The `delay` fault holds every byte through the proxy, the subscriber's notices too, by up to
 * 1500 ms for up to 2000 ms (history-backends.ts): a notice published in it, or queued behind what
 * it held, arrives up to that much later.
 */
const DELAY_OUTAGE_MS = 2000 + 1500;

/**
 * The windows in which a node's notice subscriber may have been away or held back (see
 * History.noticeOutages). Exported for re-checking a recorded history with the current rules.
 */
export function noticeOutages(faultLog: readonly { at: number; kind: string }[]): { from: number; to: number }[] {
  return faultLog.flatMap((fault) => {
    if (CUTTING_FAULTS.test(fault.kind)) return [{ from: fault.at, to: fault.at + NOTICE_OUTAGE_MS }];
    if (fault.kind === 'delay') return [{ from: fault.at, to: fault.at + DELAY_OUTAGE_MS }];
    return [];
  });
}
