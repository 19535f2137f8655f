/**
 * @module Hooks the manager calls at each step of a session's life; metrics implement them.
 */

export interface SessionObserver {
  /** A request started a session (`created`: a new one). */
  started(created: boolean): void;
  /** A persist reached the store. */
  persisted(durationMs: number): void;
  /** A persist failed (the reply became an error, or it was logged with after_response). */
  persistFailed(error: unknown): void;
  /** A session was read from the store (`durationMs` from request to reply). */
  loaded?(durationMs: number): void;
  /** update() lost a compare-and-set to another node's write and runs its function again. */
  updateRetried?(): void;
  /** update() gave up when its time budget ran out (409 ERR_SESSION_CONFLICT). */
  updateConflicted?(): void;
  /** A session cookie was tampered, malformed, oversized or signed with an unknown secret. */
  cookieRejected?(): void;
}

export const silentObserver: SessionObserver = {
  started() {},
  persisted() {},
  persistFailed() {},
};
