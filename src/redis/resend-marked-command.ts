/**
 * @module A write command that says when it is sent again. ioredis sends a command whose reply it
 * did not get once more after it reconnects (or, on a Cluster, after a redirection), with the
 * same bytes. The write function recognises a re-send by its operation id among the session's
 * recent ids (`m:v`), but that list holds the last five or six writes only: when more writes to
 * the session landed in between, the id is gone and the re-send would be applied a second time.
 * Marked as a re-send (an `r` before its header), the function answers "unknown" instead of
 * applying it whenever the id may have been pushed out, and the request gets a 503: at most once.
 */
import { Command } from 'ioredis';
import type { RedisClient } from './redis-client-factory.js';

/** The re-send mark: the first character of a write's header (redis-functions.ts). */
export const RESEND_MARK = 'r';

class ResendMarkedCommand extends Command {
  readonly #headerIndex: number;
  #written = false;

  constructor(args: (string | Buffer | number)[], headerIndex: number) {
    super('fcall', args, { replyEncoding: null });
    this.#headerIndex = headerIndex;
  }

  // ioredis builds the bytes each time it writes the command: from the second time on, the
  // header carries the mark.
  override toWritable(socket: object): string | Buffer {
    if (this.#written) {
      const header = this.args[this.#headerIndex];
      if (typeof header === 'string' && !header.startsWith(RESEND_MARK)) this.args[this.#headerIndex] = RESEND_MARK + header;
    } else {
      this.#written = true;
    }
    return super.toWritable(socket);
  }
}

/**
 * FCALL of write function `name` on `keys`, its first argument being the write header; a re-send
 * of it carries the re-send mark. Buffers in the reply stay Buffers.
 */
export function fcallWrite(client: RedisClient, name: string, keys: string[], args: (string | Buffer)[]): Promise<unknown> {
  const command = new ResendMarkedCommand([name, keys.length, ...keys, ...args], 2 + keys.length);
  return client.sendCommand(command) as Promise<unknown>;
}
