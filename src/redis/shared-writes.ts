/**
 * @module Commands of concurrent requests share socket writes, without ioredis auto-pipelining.
 *
 * The first command issued on a connection in an event-loop turn corks its socket; the socket is
 * uncorked once the turn's I/O callbacks have run (setImmediate, the moment ioredis's own
 * auto-pipelining flushes too), so every command the turn's requests issued leaves in one write.
 * Auto-pipelining gets the same single write through a Pipeline object, an extra promise and a
 * results array per batch and command; on our machine that was ~8 µs of garbage collection per
 * request, and the cork costs none of it (see docs/benchmarks.md).
 *
 * Used on standalone and Sentinel connections. A Cluster routes each command to a node's own
 * connection, so it keeps ioredis's auto-pipelining, which batches per node.
 */
import type { Redis } from 'ioredis';

/** Sockets corked in this turn (a reconnect makes a new socket, which starts uncorked). */
const corked = new WeakSet<object>();

/** Holds the writes of `client`'s socket until the end of this event-loop turn. */
export function shareWrites(client: Redis): void {
  const socket = client.stream;
  if (socket === undefined || corked.has(socket) || client.status !== 'ready') return;
  corked.add(socket);
  socket.cork();
  setImmediate(() => {
    corked.delete(socket);
    socket.uncork();
  });
}
