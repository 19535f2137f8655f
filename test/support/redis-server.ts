// Throwaway redis-server processes for tests: free port, fresh temp dir, killed when the test process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

export const HOST = '127.0.0.1' as const;

const OUTPUT_LIMIT = 8 * 1024;

// ---------------------------------------------------------------------------
// Process-exit safety net: nothing we spawn may outlive the test process.

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let hooksInstalled = false;

function killEverythingSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort on the way out
    }
  }
  liveDirs.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killEverythingSync);
  // 'exit' does not fire when a signal kills us (e.g. the test runner's timeout SIGTERM).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killEverythingSync();
      // If nobody else handles the signal, keep the default behaviour (die by that signal).
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** A fresh temp dir, removed on process exit if the caller forgets. */
export function makeTempDir(prefix = 'keepsake-redis-'): string {
  installExitHooks();
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  liveDirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------

/** Ask the kernel for a free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once the Redis on `port` has stopped answering (a DEBUG SLEEP or a slow script has
 * begun): a PING on a new connection gets no reply within 100 ms. Waits for the event instead of
 * guessing how long the command takes to arrive.
 */
export async function untilBusy(port: number, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    try {
      await redisCommand(port, ['PING'], { timeoutMs: 100 });
    } catch {
      return;
    }
    await sleep(10);
  }
  throw new Error(`Redis on port ${port} still answers PING after ${withinMs} ms`);
}

// ---------------------------------------------------------------------------
// Minimal RESP2 client. Used instead of ioredis for probes/INFO so the helper
// sends exactly the commands it means to (no ready-check INFO, CLIENT SETINFO, ...).

export type RespReply = string | number | null | RespReply[];

export class RespError extends Error {
  override name = 'RespError';
}

function encode(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.from(a);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

type Parsed = { value: RespReply | RespError; next: number };

// Returns undefined when buf does not yet hold a complete reply.
function parse(buf: Buffer, at: number): Parsed | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('utf8', at + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespReply[] = [];
      let pos = after;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, pos);
        if (!item) return undefined;
        // Nested errors (e.g. inside EXEC) are surfaced as their message text.
        items.push(item.value instanceof RespError ? item.value.message : item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/** Send one command on a fresh connection and return its reply; -ERR replies reject with RespError. */
export function redisCommand(
  port: number,
  args: readonly string[],
  { host = HOST, timeoutMs = 2000 }: { host?: string; timeoutMs?: number } = {},
): Promise<RespReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, value?: RespReply): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(
      () => finish(new Error(`${args[0]} to ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.once('connect', () => sock.write(encode(args)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let parsed: Parsed | undefined;
      try {
        parsed = parse(buf, 0);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (!parsed) return;
      if (parsed.value instanceof RespError) finish(parsed.value);
      else finish(null, parsed.value);
    });
    sock.once('error', (err) => finish(err));
    sock.once('close', () => finish(new Error(`connection to ${host}:${port} closed before a reply`)));
  });
}

// Commands whose INFO commandstats entry is 'command|subcommand'.
const CONTAINER_COMMANDS = new Set([
  'acl', 'client', 'cluster', 'command', 'config', 'function', 'latency', 'memory',
  'module', 'object', 'pubsub', 'script', 'sentinel', 'slowlog', 'xinfo', 'xgroup',
]);

/** The name INFO commandstats uses for a command line, e.g. ['CONFIG','GET','x'] -> 'config|get'. */
export function statName(args: readonly string[]): string {
  const cmd = (args[0] ?? '').toLowerCase();
  return CONTAINER_COMMANDS.has(cmd) && args[1] ? `${cmd}|${args[1].toLowerCase()}` : cmd;
}

/** Parse `INFO` text into key -> value (section headers and blank lines skipped). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

// ---------------------------------------------------------------------------

/**
 * One spawned redis-server process (plain server or sentinel) with its recent output kept
 * for error messages. Commands sent through `command()` are tallied in `ownCalls` so
 * stats helpers can leave them out.
 */
export class RedisProcess {
  readonly ownCalls = new Map<string, number>();
  private out = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: Error | null = null;
  private readonly exitedPromise: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly argv: readonly string[],
  ) {
    const append = (chunk: Buffer): void => {
      this.out += chunk.toString('utf8');
      if (this.out.length > OUTPUT_LIMIT) this.out = this.out.slice(-OUTPUT_LIMIT);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exitedPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        liveChildren.delete(child);
        resolve();
      });
      child.once('error', (err) => {
        // spawn failure (e.g. ENOENT): no 'exit' follows
        this.spawnError = err;
        this.exitInfo ??= { code: null, signal: null };
        liveChildren.delete(child);
        resolve();
      });
    });
  }

  /** Spawn `redis-server ...argv` and wait (max timeoutMs) until it answers PING and is really our process. */
  static async spawn(argv: readonly string[], port: number, { timeoutMs = 5000 } = {}): Promise<RedisProcess> {
    installExitHooks();
    const child = spawn('redis-server', [...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    // Don't let a forgotten server keep the test process alive; the exit hook kills it.
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();
    const proc = new RedisProcess(child, port, argv);
    try {
      await proc.waitReady(timeoutMs);
    } catch (err) {
      await proc.kill('SIGKILL');
      throw err;
    }
    return proc;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  output(): string {
    return this.out;
  }

  /** Run one command against this process, counting it as a helper call. */
  async command(args: readonly string[], timeoutMs?: number): Promise<RespReply> {
    const reply = await redisCommand(this.port, args, timeoutMs === undefined ? {} : { timeoutMs });
    const name = statName(args);
    this.ownCalls.set(name, (this.ownCalls.get(name) ?? 0) + 1);
    return reply;
  }

  private describe(what: string): Error {
    const how = this.spawnError
      ? `failed to spawn: ${this.spawnError.message}`
      : this.exitInfo
        ? `exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal})`
        : 'still running';
    return new Error(
      `redis-server ${this.argv.map((a) => (a === '' ? "''" : a)).join(' ')} on port ${this.port}: ${what}; ${how}\n--- output ---\n${this.out}`,
    );
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive) {
        // give the pipes a moment to drain so the error shows why it died
        await sleep(50);
        throw this.describe('exited before answering PING');
      }
      let pong = false;
      try {
        pong = (await redisCommand(this.port, ['PING'], { timeoutMs: 500 })) === 'PONG';
      } catch {
        // not listening yet, or -LOADING
      }
      if (pong) {
        this.ownCalls.set('ping', 1);
        // Someone else's server could hold the port (free-port race): check the pid.
        let info: Map<string, string>;
        try {
          info = parseInfo(String(await this.command(['INFO', 'server'])));
        } catch (err) {
          throw this.describe(`INFO server failed: ${(err as Error).message}`);
        }
        if (Number(info.get('process_id')) !== this.child.pid) {
          throw this.describe(`port is answered by another process (pid ${info.get('process_id')})`);
        }
        return;
      }
      await sleep(50);
    }
    throw this.describe(`no PONG within ${timeoutMs} ms`);
  }

  /** Send a signal and resolve once the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive) return;
    this.child.ref(); // keep the event loop alive until we see the exit
    try {
      this.child.kill(signal);
      await this.exitedPromise;
    } finally {
      this.child.unref();
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after graceMs. */
  async terminate(graceMs = 2000): Promise<void> {
    if (!this.alive) return;
    const timer = setTimeout(() => {
      if (this.alive) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      await this.kill('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  }

  /** True when the failure looks like a port clash, so a caller may retry on another port. */
  static isPortClash(err: unknown): boolean {
    const msg = err instanceof Error ? err.message : String(err);
    return /Address already in use|another process/i.test(msg);
  }
}

// ---------------------------------------------------------------------------

/** Close an ioredis client without hanging if its server is already gone. */
export async function closeClient(client: { status: string; quit(): Promise<unknown>; disconnect(): void }): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    await Promise.race([client.quit().catch(() => undefined), sleep(1000)]);
  }
  client.disconnect();
}

export interface RedisServerOptions {
  /** Extra redis-server args, appended last so they override the defaults (e.g. '--appendonly', 'yes'). */
  args?: string[];
  /** Fixed port; otherwise a free one is picked (and re-picked on a clash). */
  port?: number;
}

export class RedisServer {
  readonly host = HOST;
  private readonly clients = new Set<Redis>();
  private stopping: Promise<void> | null = null;

  private constructor(
    private proc: RedisProcess,
    readonly port: number,
    readonly dir: string,
    private readonly argv: readonly string[],
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = makeTempDir();
    const attempts = options.port === undefined ? 5 : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const port = options.port ?? (await freePort());
      const argv = [
        '--port', String(port),
        '--bind', HOST,
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        ...(options.args ?? []),
      ];
      try {
        const proc = await RedisProcess.spawn(argv, port);
        return new RedisServer(proc, port, dir, argv);
      } catch (err) {
        lastErr = err;
        if (!RedisProcess.isPortClash(err)) break;
      }
    }
    await removeTempDir(dir);
    throw lastErr;
  }

  /** The underlying process (pid, recent output). Replaced by restart(). */
  get process(): RedisProcess {
    return this.proc;
  }

  get alive(): boolean {
    return this.proc.alive;
  }

  url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  /**
   * A new ioredis client to this server, quit by stop(). Options are passed through
   * (e.g. { maxRetriesPerRequest: 0 } to fail fast while the server is down).
   */
  client(options: RedisOptions = {}): Redis {
    const c = new Redis({ ...options, host: HOST, port: this.port });
    // Without a listener ioredis prints every reconnect failure; commands still reject.
    c.on('error', () => {});
    this.clients.add(c);
    return c;
  }

  /** Signal the process (SIGKILL by default) and resolve once it has exited. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.proc.kill(signal);
  }

  /** Start again on the same port and dir (an appendonly file is replayed); stops it first if still running. */
  async restart(): Promise<void> {
    if (this.stopping) throw new Error('RedisServer.restart() after stop()');
    await this.proc.terminate();
    this.proc = await RedisProcess.spawn(this.argv, this.port);
  }

  /**
   * `INFO commandstats` as command -> calls ('get', 'fcall', 'function|load', ...).
   * The helper's own PING/INFO calls are subtracted, so deltas measure only your clients
   * (ioredis handshake commands such as its ready-check INFO are NOT subtracted).
   * Counters reset on restart().
   */
  async commandStats(): Promise<Map<string, number>> {
    const own = new Map(this.proc.ownCalls);
    const text = String(await this.proc.command(['INFO', 'commandstats']));
    const stats = new Map<string, number>();
    for (const [key, value] of parseInfo(text)) {
      if (!key.startsWith('cmdstat_')) continue;
      const m = /(?:^|,)calls=(\d+)/.exec(value);
      if (!m) continue;
      const name = key.slice('cmdstat_'.length);
      const calls = Number(m[1]) - (own.get(name) ?? 0);
      if (calls > 0) stats.set(name, calls);
    }
    return stats;
  }

  /** `total_commands_processed` minus the helper's own PING/INFO calls (see commandStats). */
  async totalCommands(): Promise<number> {
    let own = 0;
    for (const n of this.proc.ownCalls.values()) own += n;
    const info = parseInfo(String(await this.proc.command(['INFO', 'stats'])));
    return Number(info.get('total_commands_processed')) - own;
  }

  /** Quit tracked clients, stop the process (SIGTERM, then SIGKILL), remove the dir. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.clients].map((c) => closeClient(c)));
      this.clients.clear();
      await this.proc.terminate();
      await removeTempDir(this.dir);
    })();
    return this.stopping;
  }
}

/**
 * Commands the app sent to `server` while `action` ran, by name; `settle` waits for what the app
 * sends without waiting for it. EXISTS is left out: the expiry sweep's periodic EXISTS may fall
 * in the window.
 */
export async function commandsDuring(server: RedisServer, action: () => Promise<unknown>, settle: () => Promise<unknown> = async () => undefined): Promise<Record<string, number>> {
  const before = await server.commandStats();
  await action();
  await settle();
  const after = await server.commandStats();
  const delta: Record<string, number> = {};
  for (const [name, calls] of after) {
    if (name === 'exists') continue;
    const diff = calls - (before.get(name) ?? 0);
    if (diff > 0) delta[name] = diff;
  }
  return delta;
}
