/**
 * @module Which sessions this node gave their full idle TTL lately. With `ttl_refresh_slack = N`
 * a read does not send a PEXPIRE on every request: one is due once N % of the session's idle
 * lifespan has passed since this node's last. A session then expires between (100 − N) % and
 * 100 % of its idle lifespan after its last request (docs/lifecycle.md), and most reads are one
 * command (HGETALL) instead of two. With 0 (the default) every read refreshes; a write still
 * leaves the TTL alone when this request's load refreshed it moments ago (`floorMs`).
 *
 * Sound because a session's TTL only moves forward between refreshes: the key of an id is never
 * given a shorter TTL once it has its full one (an id's lifespan `m:l` never changes; a short
 * `empty_session_lifespan` TTL is never recorded here; the absolute end is applied on its own).
 * Another node refreshing the same session only makes it live longer. Bounded: the oldest entries
 * go first, and a forgotten session is simply refreshed at its next read.
 */

/** Sessions tracked per node at most (~100 bytes each). */
const TRACKED_MAX = 50_000;

export class TtlRefreshes {
  /** Per session id: when this node last gave it its full TTL, and that TTL (its idle lifespan, ms). */
  readonly #last = new Map<string, { readonly at: number; readonly idleMs: number }>();
  /** @param slack the share of the idle lifespan a refresh may lag by (ttl_refresh_slack / 100). */
  constructor(
    private readonly slack: number,
    private readonly max = TRACKED_MAX,
  ) {}

  /**
   * True when session `id` should get its full TTL again: `slack` of its idle lifespan (and at
   * least `floorMs`) has passed since this node's last refresh. `idleMs` is its idle lifespan as
   * the caller knows it; the one recorded with the last refresh counts too (the shorter wins), so
   * a caller that does not know a login's short lifespan still refreshes in time.
   */
  due(id: string, idleMs: number, now = Date.now(), floorMs = 0): boolean {
    const last = this.#last.get(id);
    return last === undefined || now - last.at >= Math.max(Math.min(idleMs, last.idleMs) * this.slack, floorMs);
  }

  /** This node just gave session `id` its full TTL, its idle lifespan of `idleMs`. */
  refreshed(id: string, idleMs: number, now = Date.now()): void {
    this.#last.delete(id);
    if (this.#last.size >= this.max) this.#last.delete(this.#last.keys().next().value!);
    this.#last.set(id, { at: now, idleMs });
  }

  /** True when this node gave session `id` its full TTL at or after `since` (ms). */
  since(id: string, since: number): boolean {
    const last = this.#last.get(id);
    return last !== undefined && last.at >= since;
  }

  /** Session `id` is gone, moved or its refresh may not have landed: its next read refreshes it. */
  forget(id: string): void {
    this.#last.delete(id);
  }
}
