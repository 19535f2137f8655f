/**
 * @module Finds the sessions with sockets on this node that Redis expired (idle timeout, or the
 * absolute end the TTL is capped at): an expiry publishes no notice, so a timer asks instead.
 *
 * Every `clamp(cookie_lifespan / 4, 250 ms, 30 s)` it sends an EXISTS per session with sockets
 * here, one round trip per SWEEP_BATCH sessions (batches one after the other, so a node with very
 * many neither queues them all at once nor holds Redis up). A missing key is not an ended session
 * yet: a login renames the key, and its `renamed` notice may reach the subscriber after the EXISTS
 * reply. So a session ends only when a later sweep, at least CONFIRM_AFTER_MS after the first
 * miss, still misses it under the same id, with the subscriber up all along. No sockets: no
 * timer, no command.
 */
import { debuglog } from 'node:util';
import type { SessionStore } from '../session/session-store.js';
import type { ConnectionRegistry, SessionSockets } from './connection-registry.js';
import type { SessionNotices } from './session-notices.js';

const trace = debuglog('keepsake');

/** Bounds of the sweep period, which is a quarter of cookie_lifespan in between. */
export const MIN_SWEEP_MS = 250;
export const MAX_SWEEP_MS = 30_000;

/** How long a key must stay missing before its sockets are closed (time for a rename's notice to arrive). */
export const CONFIRM_AFTER_MS = 1000;

/** Sessions checked per round trip. */
export const SWEEP_BATCH = 1000;

/** How often to check, for a `cookie_lifespan` in seconds. */
export function sweepPeriodMs(cookieLifespanSeconds: number): number {
  return Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, (cookieLifespanSeconds * 1000) / 4));
}

/** A session seen missing: under which id, when first, and under which subscriber epoch. */
interface Miss {
  readonly id: string;
  readonly since: number;
  readonly epoch: number;
}

export interface ExpirySweepDeps {
  readonly store: SessionStore;
  readonly registry: ConnectionRegistry;
  readonly notices: SessionNotices;
  readonly periodMs: number;
  /** Closes the sockets of a session that expired (as a destroy does). */
  readonly ended: (entry: SessionSockets) => void;
  /** Sessions per round trip (SWEEP_BATCH unless a test wants smaller batches). */
  readonly batchSize?: number;
}

export class ExpirySweep {
  readonly #deps: ExpirySweepDeps;
  #timer: NodeJS.Timeout | null = null;
  /** A sweep is waiting for Redis: the next tick is skipped rather than piled on. */
  #running = false;
  #stopped = false;
  /** Sessions missing at the last sweep (entries that are gone or found again are not carried over). */
  #missing = new Map<SessionSockets, Miss>();

  constructor(deps: ExpirySweepDeps) {
    this.#deps = deps;
  }

  /** Starts the timer if it is not running (a socket with a session was registered). */
  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#timer = setInterval(() => void this.sweep(), this.#deps.periodMs);
    this.#timer.unref();
  }

  /** Stops for good (shutdown). */
  stop(): void {
    this.#stopped = true;
    this.#pause();
  }

  /** One sweep: checks every session with sockets here, SWEEP_BATCH per round trip. Never throws. */
  async sweep(): Promise<void> {
    if (this.#running || this.#stopped) return;
    const entries = this.#deps.registry.entries();
    if (entries.length === 0) {
      this.#missing.clear();
      this.#pause(); // the next socket with a session starts it again
      return;
    }
    const ids = entries.map((entry) => entry.id);
    const store = this.#deps.store;
    this.#running = true;
    const batch = this.#deps.batchSize ?? SWEEP_BATCH;
    const exists: number[] = [];
    try {
      for (let first = 0; first < ids.length; first += batch) {
        const some = ids.slice(first, first + batch);
        // Issued synchronously on one connection: every EXISTS of a batch leaves in one socket write.
        exists.push(...(await store.pool.run((client) => Promise.all(some.map((id) => client.exists(store.key(id)))))));
      }
    } catch (error) {
      trace('expiry sweep skipped: %s', (error as Error).message);
      return;
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    const now = Date.now();
    const { subscribed, epoch } = this.#deps.notices;
    const missing = new Map<SessionSockets, Miss>();
    entries.forEach((entry, i) => {
      // Found, or renamed or closed meanwhile: nothing to do (a new id is checked next time).
      if (exists[i] !== 0 || !entry.live || entry.id !== ids[i]) return;
      const before = this.#missing.get(entry);
      // A notice (a rename) may have been missed while the subscriber was down: wait for it to be back.
      const miss = before !== undefined && before.id === entry.id && before.epoch === epoch ? before : { id: entry.id, since: now, epoch };
      if (miss === before && subscribed && now - miss.since >= CONFIRM_AFTER_MS) {
        trace('session expired: closing its %d socket(s)', entry.connections.size);
        this.#deps.ended(entry);
        return;
      }
      missing.set(entry, miss);
    });
    this.#missing = missing;
  }

  #pause(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
