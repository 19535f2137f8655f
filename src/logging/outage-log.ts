/**
 * @module One line when a Redis link goes down and one when it is back, whatever the number of
 * connections and reconnect attempts in between (an operator sees the outage, not a flood).
 */
import type { KeepsakeLogger } from '../logger.js';
import { redactCommand } from './redact-command.js';

export class OutageLog {
  #down = false;

  constructor(
    private readonly logger: KeepsakeLogger,
    private readonly fields: Record<string, unknown>,
    private readonly messages: { lost: string; back: string },
  ) {}

  lost(error: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.logger.error({ ...this.fields, err: redactCommand(error) }, this.messages.lost);
  }

  back(): void {
    if (!this.#down) return;
    this.#down = false;
    this.logger.info(this.fields, this.messages.back);
  }
}
