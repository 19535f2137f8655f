/**
 * @module `session.data.update(key, fn)`: an atomic read-modify-write of one key.
 *
 * Optimistic: the write is a compare-and-set inside one FCALL (the key must still hold the bytes
 * `fn` saw), so the happy path is one round trip. Updates of the same session key on this node
 * wait for each other in a queue and hand the bytes they wrote to the next one, so retries only
 * happen against writes of other nodes; those re-run `fn` on the fresh value until the budget
 * (`session.update_timeout_ms`) runs out, then answer 409 with nothing written.
 */
import { SessionConflictError } from '../errors.js';
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
    const chainKey = `${session.id}\u0000${key}`;
    let chain = this.#chains.get(chainKey);
    if (chain === undefined) {
      chain = { tail: Promise.resolve(), waiting: 0, latest: undefined };
      this.#chains.set(chainKey, chain);
    }
    const own = chain;
    own.waiting++;
    const result = own.tail.then(() => traceUpdate(session.id, key, (span) => this.#apply(session, key, fn, own, span)));
    own.tail = result.catch(() => undefined);
    void own.tail.then(() => {
      if (--own.waiting === 0 && this.#chains.get(chainKey) === own) this.#chains.delete(chainKey);
    });
    return result;
  }

  async #apply(session: Session, key: string, fn: (current: unknown) => unknown, chain: Chain, span: { attempts: number }): Promise<unknown> {
    const deadline = Date.now() + this.#budgetMs;
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
      const refreshTtl = this.#store.ttlStale(session.ttlRefreshedAt);
      const began = performance.now();
      let outcome: Awaited<ReturnType<SessionStore['write']>>;
      try {
        outcome = await this.#store.write(session.id, {
          create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
          createdAt: session.meta.createdAt,
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
        if (refreshTtl) session.markTtlRefreshed();
        session.markStored();
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
