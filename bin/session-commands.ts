/**
 * @module `keepsake session show|list|destroy`: operate on stored sessions from a shell.
 * Results go to stdout (exactly one JSON object for `show`, one id per line for `list`); messages
 * go to stderr; `list --json` prints one JSON array of the user's devices, each with its id. Exit codes: 0 done, 1 no such session or Redis failed, 2 bad usage.
 */
import { consoleLogger, createKeepsakeContainer, loadConfig, type Devices, type SessionManager } from '../src/index.js';
import { isSessionId } from '../src/session/session-id.js';

export const SESSION_USAGE = `  keepsake session show ID --config FILE
  keepsake session list --user NAME [--json] --config FILE
  keepsake session destroy ID|--user NAME --config FILE`;

export interface SessionCommandOptions {
  configFile: string;
  user?: string | undefined;
  /** `list`: one JSON array of `{id, …Device but current}` instead of ids. */
  json?: boolean;
}

/** Runs `keepsake session <action> [ID]`; returns the exit code. */
export async function runSessionCommand(action: string | undefined, args: string[], options: SessionCommandOptions): Promise<number> {
  const [id, extra] = args;
  const byUser = options.user !== undefined;
  const usage = (why: string) => {
    process.stderr.write(`keepsake session: ${why}\nusage:\n${SESSION_USAGE}\n`);
    return 2;
  };
  if (action === 'show' && (id === undefined || extra !== undefined || byUser)) return usage('show takes one session ID');
  if (action === 'list' && (!byUser || id !== undefined)) return usage('list takes --user NAME');
  if (options.json === true && action !== 'list') return usage('--json goes with list');
  if (action === 'destroy' && (byUser ? id !== undefined : id === undefined || extra !== undefined)) return usage('destroy takes one session ID or --user NAME');
  if (action !== 'show' && action !== 'list' && action !== 'destroy') return usage(`unknown action '${action ?? ''}'`);
  if (options.user === '') return usage('--user needs a name');

  const config = await loadConfig(options.configFile);
  const container = createKeepsakeContainer(config, { logger: consoleLogger });
  try {
    const sessions = container.resolve('sessionManager');
    if (action === 'list' && options.json === true) return await listDevices(container.resolve('devices'), options.user!);
    if (action === 'list') return await list(sessions, options.user!);
    if (action === 'destroy' && byUser) return await destroyUser(sessions, options.user!);
    if (!isSessionId(id!)) {
      process.stderr.write(`keepsake session ${action}: '${id!.slice(0, 80)}' is not a session id (43 characters of A-Z a-z 0-9 _ -, as in the cookie before the dot)\n`);
      return 1;
    }
    return action === 'show' ? await show(sessions, id!) : await destroy(sessions, id!);
  } finally {
    await container.dispose(); // closes the pools: the process can exit
  }
}

async function show(sessions: SessionManager, id: string): Promise<number> {
  const session = await sessions.peek(id);
  if (session === null) return noSession('show', id);
  process.stdout.write(`${JSON.stringify(session.data.toJSON(), jsonSafe)}\n`);
  return 0;
}

async function list(sessions: SessionManager, user: string): Promise<number> {
  const ids = await sessions.userSessions(user);
  if (ids.length > 0) process.stdout.write(`${ids.join('\n')}\n`);
  process.stderr.write(`user '${user}' has ${ids.length} session(s)\n`);
  return 0;
}

async function listDevices(devices: Devices, user: string): Promise<number> {
  const records = await devices.records(user);
  process.stdout.write(`${JSON.stringify(records)}\n`);
  process.stderr.write(`user '${user}' has ${records.length} device(s)\n`);
  return 0;
}

async function destroy(sessions: SessionManager, id: string): Promise<number> {
  // The destroy publishes its notice in the same atomic step: every node knows once it returns.
  if (!(await sessions.destroyById(id))) return noSession('destroy', id);
  process.stderr.write(`session ${id} destroyed\n`);
  return 0;
}

async function destroyUser(sessions: SessionManager, user: string): Promise<number> {
  const count = await sessions.destroyUser(user);
  process.stderr.write(`destroyed ${count} session(s) of user '${user}'\n`);
  return 0;
}

function noSession(action: string, id: string): number {
  process.stderr.write(`keepsake session ${action}: no session ${id} (ended, expired, or another key_prefix)\n`);
  return 1;
}

// msgpack can hold what JSON cannot: bigints print as strings.
function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
