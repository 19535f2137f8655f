/**
 * @module keepsake's `node:diagnostics_channel` tracing channels, as fastify and undici publish
 * theirs: an APM (OpenTelemetry, @fastify/otel and friends) subscribes and makes spans, with no
 * dependency of keepsake on it. A context carries `sessionHash` (a SHA-256 prefix of the id,
 * stable per session), never the id: the id is a credential. No subscriber: no work at all.
 */
import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';

/** What every keepsake span context holds. */
export interface SessionSpanContext {
  /** 16 hex characters of SHA-256(id): joins the spans of one session without revealing its id. */
  readonly sessionHash: string;
}
/** `keepsake:session:load`: reading a session (one round trip; a version check for a large one). */
export type LoadSpanContext = SessionSpanContext;
/** `keepsake:session:persist`: writing a request's changes. */
export interface PersistSpanContext extends SessionSpanContext {
  /** True when this persist creates the session in the store. */
  readonly created: boolean;
}
/** `keepsake:session:update`: `session.data.update(key, fn)`, retries included. */
export interface UpdateSpanContext extends SessionSpanContext {
  readonly key: string;
  /** Compare-and-set attempts so far (1 without contention from other nodes). */
  attempts: number;
}
/** `keepsake:session:notice`: a notice from another request or node reaching this node's sockets. */
export interface NoticeSpanContext extends SessionSpanContext {
  readonly kind: 'changed' | 'renamed' | 'destroyed';
}

/** Channel names, for `diagnostics_channel.tracingChannel(name)` in an app or an APM. */
export const KEEPSAKE_CHANNELS = {
  load: 'keepsake:session:load',
  persist: 'keepsake:session:persist',
  update: 'keepsake:session:update',
  notice: 'keepsake:session:notice',
} as const;

const load = diagnostics.tracingChannel<unknown, LoadSpanContext>(KEEPSAKE_CHANNELS.load);
const persist = diagnostics.tracingChannel<unknown, PersistSpanContext>(KEEPSAKE_CHANNELS.persist);
const update = diagnostics.tracingChannel<unknown, UpdateSpanContext>(KEEPSAKE_CHANNELS.update);
const notice = diagnostics.tracingChannel<unknown, NoticeSpanContext>(KEEPSAKE_CHANNELS.notice);

/** The id's stable, non-reversible tag for traces. */
export function sessionHash(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

/** @internal */
export function traceLoad<T>(id: string, run: () => Promise<T>): Promise<T> {
  return load.hasSubscribers ? load.tracePromise(run, { sessionHash: sessionHash(id) }) : run();
}

/** @internal */
export function tracePersist<T>(id: string, created: boolean, run: () => Promise<T>): Promise<T> {
  return persist.hasSubscribers ? persist.tracePromise(run, { sessionHash: sessionHash(id), created }) : run();
}

/** @internal `run` gets the context to count its attempts in (a plain object when nobody listens). */
export function traceUpdate<T>(id: string, key: string, run: (span: { attempts: number }) => Promise<T>): Promise<T> {
  if (!update.hasSubscribers) return run({ attempts: 0 });
  const span: UpdateSpanContext = { sessionHash: sessionHash(id), key, attempts: 0 };
  return update.tracePromise(() => run(span), span);
}

/** @internal */
export function traceNotice(id: string, kind: NoticeSpanContext['kind'], run: () => void): void {
  if (notice.hasSubscribers) notice.traceSync(run, { sessionHash: sessionHash(id), kind });
  else run();
}
