/**
 * @module `session.data.update(key, fn)`: an atomic read-modify-write of one key.
 *
 * Optimistic: the write is a compare-and-set inside one FCALL (the key must still hold the bytes
 * `fn` saw), so the happy path is one round trip. Updates of the same session key on this node
 * wait for each other in a queue and hand the bytes they wrote to the next one, so retries only
 * happen against writes of other nodes; those re-run `fn` on the fresh value until the budget
 * (`session.update_timeout_ms`) runs out, then answer 409 with nothing written.
 *
 * The budget starts when `update()` is called, not when the update leaves the queue: otherwise
 * the k-th queued update would wait k round trips (k command timeouts while Redis stalls). One
 * whose budget runs out while it waits is answered at once and never sent: 503 when Redis failed
 * an update ahead of it meanwhile (Redis is the reason), else 409.
 */
import { SessionConflictError, SessionStoreUnavailableError } from '../errors.js';
import { traceUpdate } from '../tracing/session-channels.js';
import { silentObserver, type SessionObserver } from './session-observer.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';
import type { ValueCodec } from './value-codec.js';

interface Chain {
  tail: Promise<unknown>;
  waiting: number;
  /** Bytes the last update in this chain saw in the store (null: absent). */
  latest: Buffer | null | undefined;
  /** How many updates of this chain Redis failed (unreachable or timed out). */
  storeFailures: number;
}

const NO_CHANGES = { sets: new Map<string, Buffer>(), deletes: [], cleared: false } as const;

export class SessionUpdater {
  readonly #store: SessionStore;
  readonly #codec: ValueCodec;
  readonly #budgetMs: number;
  readonly #chains = new Map<string, Chain>();

  readonly #observer: SessionObserver;

  constructor(deps: { sessionStore: SessionStore; valueCodec: ValueCodec; config: { session: { update_timeout_ms: number } }; sessionObserver?: SessionObserver }) {
    const { sessionStore, valueCodec, config } = deps;
    // Optional: a container without metrics (tests building the updater by hand) counts nothing.
    this.#observer = deps.sessionObserver ?? silentObserver;
    this.#store = sessionStore;
    this.#codec = valueCodec;
    this.#budgetMs = config.session.update_timeout_ms;
  }

  /** Applies `fn` to `key` of `session` in the store; returns the value stored. */
  update(session: Session, key: string, fn: (current: unknown) => unknown): Promise<unknown> {
    const deadline = Date.now() + this.#budgetMs;
    const chainKey = `${session.id}\u0000${key}`;
    let chain = this.#chains.get(chainKey);
    if (chain === undefined) {
      chain = { tail: Promise.resolve(), waiting: 0, latest: undefined, storeFailures: 0 };
      this.#chains.set(chainKey, chain);
    }
    const own = chain;
    own.waiting++;
    const ahead = own.tail;
    const failuresBefore = own.storeFailures;
    // Alone in the queue (the common case): no timer needed.
    const turn = own.waiting === 1 ? ahead : this.#queued(ahead, deadline, key, own, failuresBefore);
    const result = turn.then(() => traceUpdate(session.id, key, (span) => this.#run(session, key, fn, own, deadline, span)));
    // The next update waits for this one and for the one ahead (this one may give up earlier).
    own.tail = Promise.all([ahead, result.catch(() => undefined)]);
    void own.tail.then(() => {
      if (--own.waiting === 0 && this.#chains.get(chainKey) === own) this.#chains.delete(chainKey);
    });
    return result;
  }

  /** Waits for the updates ahead, at most until `deadline`; then answers without being sent. */
  #queued(ahead: Promise<unknown>, deadline: number, key: string, chain: Chain, failuresBefore: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          chain.storeFailures > failuresBefore
            ? new SessionStoreUnavailableError(`session store did not answer the updates of '${key}' queued ahead within session.update_timeout_ms = ${this.#budgetMs}; this update was not sent`)
            : new SessionConflictError(key, 0, { queued: true }),
        );
      }, Math.max(0, deadline - Date.now()));
      void ahead.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #run(session: Session, key: string, fn: (current: unknown) => unknown, chain: Chain, deadline: number, span: { attempts: number }): Promise<unknown> {
    try {
      return await this.#apply(session, key, fn, chain, deadline, span);
    } catch (error) {
      if (error instanceof SessionStoreUnavailableError) chain.storeFailures++;
      throw error;
    }
  }

  async #apply(session: Session, key: string, fn: (current: unknown) => unknown, chain: Chain, deadline: number, span: { attempts: number }): Promise<unknown> {
    let expected = chain.latest !== undefined ? chain.latest ?? undefined : session.data.storedBytes(key);
    // Bytes from the load or an earlier update may be stale. A write proves them by its
    // compare-and-set; an answer without a write (fn threw, or changed nothing) reads them
    // again first, so fn's verdict is always on a value current during this call.
    let confirmed = session.fresh; // nobody else knows a fresh session's id
    for (let attempt = 1; ; attempt++) {
      span.attempts = attempt;
      // fn always gets a fresh copy: it may mutate its argument without touching what we compare.
      const current = expected === undefined ? undefined : decodeOrAbsent(this.#codec, expected);
      let next: unknown;
      try {
        next = await fn(current);
      } catch (error) {
        if (confirmed) throw error;
        confirmed = true;
        const fresh = await this.#store.readData(session.id, key);
        if (sameBytes(fresh, expected)) throw error;
        expected = fresh;
        chain.latest = expected ?? null;
        continue;
      }
      const bytes = next === undefined ? undefined : this.#codec.encode(key, next);
      if (!session.fresh && sameBytes(bytes, expected)) {
        if (!confirmed) {
          confirmed = true;
          const fresh = await this.#store.readData(session.id, key);
          if (!sameBytes(fresh, expected)) {
            expected = fresh;
            chain.latest = expected ?? null;
            continue;
          }
        }
        const stored = expected === undefined ? undefined : decodeOrAbsent(this.#codec, expected);
        if (stored !== undefined || expected === undefined) session.data.applyUpdate(key, expected, stored);
        return stored === undefined ? undefined : session.data.get(key as never) ?? stored;
      }
      // A session stored empty with the short empty_session_lifespan gets the full one with its first data.
      const refreshTtl = session.shortLived || this.#store.refreshDue(session.id, session.meta.lifespan);
      const began = performance.now();
      let outcome: Awaited<ReturnType<SessionStore['write']>>;
      try {
        outcome = await this.#store.write(session.id, {
          create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
          createdAt: session.meta.createdAt,
          sessionLifespan: session.meta.lifespan,
          changes: bytes === undefined ? { ...NO_CHANGES, deletes: [key] } : { ...NO_CHANGES, sets: new Map([[key, bytes]]) },
          compare: { key, expected },
          refreshTtl,
        });
      } catch (error) {
        this.#observer.persistFailed(error);
        throw error;
      }
      if (outcome.ok) {
        this.#observer.persisted(performance.now() - began);
        session.markStored();
        session.markShortLived(false);
        chain.latest = bytes ?? null;
        const stored = bytes === undefined ? undefined : this.#codec.decode(bytes);
        session.data.applyUpdate(key, bytes, stored);
        return session.data.get(key as never) ?? stored;
      }
      confirmed = true; // the conflict reply is the value stored at that moment
      expected = outcome.current;
      chain.latest = expected ?? null;
      if (Date.now() >= deadline) {
        this.#observer.updateConflicted?.();
        throw new SessionConflictError(key, attempt);
      }
      this.#observer.updateRetried?.();
    }
  }
}

/** Undecodable bytes in the store count as an absent value (the compare-and-set still checks them). */
function decodeOrAbsent(codec: ValueCodec, bytes: Buffer): unknown {
  try {
    return codec.decode(bytes);
  } catch {
    return undefined;
  }
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined ? b === undefined : b !== undefined && a.equals(b);
}
