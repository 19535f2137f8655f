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
}

export const silentObserver: SessionObserver = {
  started() {},
  persisted() {},
  persistFailed() {},
};
