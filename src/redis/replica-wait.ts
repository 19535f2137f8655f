/**
 * @module One WAIT per connection per event-loop turn, shared by every write issued in that turn.
 *
 * WAIT blocks the connection it is sent on until the replicas acknowledge (or its timeout), and
 * keepsake's connections are shared by concurrent requests. One WAIT per write would hold each
 * later command of the turn behind a replication round trip of its own; one WAIT after all of the
 * turn's writes covers them all (WAIT counts every write sent before it on the connection) and
 * holds the connection once.
 */
import type { Redis } from 'ioredis';

/** The turn's WAIT of each connection, until it is sent. */
const pending = new WeakMap<Redis, Promise<number>>();

/**
 * How many replicas acknowledged the writes issued on `client` so far in this turn (and every
 * write before them). Call it right after issuing a write; the WAIT is sent once the turn's I/O
 * callbacks have run, behind every write the turn issued on that connection.
 */
export function replicasConfirming(client: Redis, replicas: number, timeoutMs: number): Promise<number> {
  let confirmed = pending.get(client);
  if (confirmed === undefined) {
    confirmed = new Promise<number>((resolve, reject) => {
      setImmediate(() => {
        // A write issued from now on needs a WAIT of its own: this one may leave before it.
        pending.delete(client);
        client.wait(replicas, timeoutMs).then(resolve, reject);
      });
    });
    pending.set(client, confirmed);
  }
  return confirmed;
}
