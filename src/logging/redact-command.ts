/**
 * @module ioredis puts the failed command on its errors (`error.command = { name, args }`), and
 * pino logs every enumerable field: a refused AUTH or HELLO would write the password to the log.
 */

/** Commands whose arguments carry credentials. */
const SECRET_COMMANDS = new Set(['auth', 'hello', 'acl', 'config', 'migrate']);

/** Replaces the arguments of a credential-carrying command on `error` (in place); returns it. */
export function redactCommand<T>(error: T): T {
  const command = (error as { command?: { name?: unknown; args?: unknown } } | null)?.command;
  if (command && typeof command.name === 'string' && SECRET_COMMANDS.has(command.name.toLowerCase()) && Array.isArray(command.args)) {
    command.args = command.args.map(() => '[redacted]');
  }
  return error;
}
