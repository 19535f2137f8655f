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

  constructor({ sessionStore, valueCodec, config }: { sessionStore: SessionStore; valueCodec: ValueCodec; config: { session: { update_timeout_ms: number } } }) {
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
    const result = own.tail.then(() => this.#apply(session, key, fn, own));
    own.tail = result.catch(() => undefined);
    void own.tail.then(() => {
      if (--own.waiting === 0 && this.#chains.get(chainKey) === own) this.#chains.delete(chainKey);
    });
    return result;
  }

  async #apply(session: Session, key: string, fn: (current: unknown) => unknown, chain: Chain): Promise<unknown> {
    const deadline = Date.now() + this.#budgetMs;
    let expected = chain.latest !== undefined ? chain.latest ?? undefined : session.data.storedBytes(key);
    for (let attempt = 1; ; attempt++) {
      // fn always gets a fresh copy: it may mutate its argument without touching what we compare.
      const current = expected === undefined ? undefined : this.#codec.decode(expected);
      const next = await fn(current);
      const bytes = next === undefined ? undefined : this.#codec.encode(key, next);
      if (!session.fresh && sameBytes(bytes, expected)) return next;
      const outcome = await this.#store.write(session.id, {
        create: session.fresh ? { createdAt: session.meta.createdAt, anonTag: session.meta.anonTag } : undefined,
        changes: bytes === undefined ? { ...NO_CHANGES, deletes: [key] } : { ...NO_CHANGES, sets: new Map([[key, bytes]]) },
        compare: { key, expected },
      });
      if (outcome.ok) {
        session.markStored();
        chain.latest = bytes ?? null;
        session.data.applyUpdate(key, bytes, next === undefined ? undefined : this.#codec.decode(bytes!));
        return session.data.get(key as never);
      }
      expected = outcome.current;
      chain.latest = expected ?? null;
      if (Date.now() >= deadline) throw new SessionConflictError(key, attempt);
    }
  }
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined ? b === undefined : b !== undefined && a.equals(b);
}
