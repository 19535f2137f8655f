/**
 * @module A write command that says when it is sent again. ioredis sends a command whose reply it
 * did not get once more after it reconnects (or, on a Cluster, after a redirection), with the
 * same bytes. The write function recognises a re-send by its operation id among the session's
 * recent ids (`m:v`), but that list holds the last five or six writes only: when more writes to
 * the session landed in between, the id is gone and the re-send would be applied a second time.
 * Marked as a re-send (an `r` before its header), the function answers "unknown" instead of
 * applying it whenever the id may have been pushed out, and the request gets a 503: at most once.
 * A Cluster's redirection (MOVED, ASK: the command did not run) is not marked.
 */
import { Command } from 'ioredis';
import type { RedisClient } from './redis-client-factory.js';

/** The re-send mark: the first character of a write's header (redis-functions.ts). */
export const RESEND_MARK = 'r';

export class ResendMarkedCommand extends Command {
  /** The argument that gets the mark; -1: none (the command only notes that it was sent again). */
  readonly #headerIndex: number;
  #written = false;
  #resent = false;
  /** An answer came since the last write (an error a Cluster answers by sending the command elsewhere). */
  #answered = false;
  /** The error handler of the moment (see the `reject` accessor); set while Command's constructor runs. */
  declare private handler: (error: Error) => void;

  constructor(args: (string | Buffer | number)[], headerIndex: number) {
    super('fcall', args, { replyEncoding: null });
    this.#headerIndex = headerIndex;
  }

  // ioredis hands an error reply to `reject`, which a Cluster replaces by its redirection handler
  // (MOVED, ASK, TRYAGAIN: the command did not run, and is sent again elsewhere). A ReplyError
  // there means Redis answered: the next send is a redirection, not a re-send. (A timeout or a
  // closed connection rejects with a plain Error: a later send is a re-send.) An accessor on the
  // class, not on each command, keeps commands in V8's fast object shape.
  // @ts-expect-error Command declares `reject` as a property; an accessor pair takes its place.
  override get reject(): (error: Error) => void {
    const handler = this.handler; // bound now: a Cluster keeps the one it replaces and calls it last
    return (error: Error) => {
      if (error?.name === 'ReplyError') this.#answered = true;
      handler.call(this, error);
    };
  }

  override set reject(handler: (error: Error) => void) {
    this.handler = handler;
  }

  // ioredis builds the bytes each time it writes the command: a second write with no answer in
  // between (the connection dropped with the reply) carries the mark.
  override toWritable(socket: object): string | Buffer {
    if (this.#written && !this.#answered) {
      this.#resent = true;
      const header = this.#headerIndex < 0 ? undefined : this.args[this.#headerIndex];
      if (typeof header === 'string' && !header.startsWith(RESEND_MARK)) this.args[this.#headerIndex] = RESEND_MARK + header;
    }
    this.#written = true;
    this.#answered = false;
    return super.toWritable(socket);
  }

  /** True once it was written again with no answer between: the first send's reply was lost. */
  get resent(): boolean {
    return this.#resent;
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

/**
 * FCALL of function `name` whose answer says whether it ran more than once for this call: `resent`
 * is true when ioredis had to send it again after a lost reply (its arguments are not marked).
 */
export async function fcallNotingResend(client: RedisClient, name: string, keys: string[], args: (string | Buffer)[]): Promise<{ reply: unknown; resent: boolean }> {
  const command = new ResendMarkedCommand([name, keys.length, ...keys, ...args], -1);
  const reply = await (client.sendCommand(command) as Promise<unknown>);
  return { reply, resent: command.resent };
}
