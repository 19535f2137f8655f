/**
 * @module The keepsake CLI: `serve`, `config check` (and the session commands).
 * Output meant for programs goes to stdout; logs and errors go to stderr.
 */
import { parseArgs } from 'node:util';
import { describeConfig, KeepsakeError, loadConfig } from '../src/index.js';
import { isSessionId } from '../src/session/session-id.js';
import { LEGACY_USAGE, runLegacyCommand } from './legacy-commands.js';
import { runSessionCommand, SESSION_USAGE } from './session-commands.js';

const USAGE = `usage:
  keepsake serve --config FILE [--host H] [--port P]   (the demo app: from a clone of the repository)
  keepsake config check --config FILE
${SESSION_USAGE}
${LEGACY_USAGE}`;

/** An error whose message says it all: printed in one line, no stack trace, exit code 1. */
class CliError extends Error {}
/** A wrong command line: printed with the usage, exit code 2. */
class UsageError extends CliError {}

function parseCommandLine(argv: string[]) {
  // A session id is base64url, so one in 64 begins with '-': right after `session show|destroy`
  // an argument of an id's shape is that id, never an option.
  const id = argv[0] === 'session' && (argv[1] === 'show' || argv[1] === 'destroy') && isSessionId(argv[2] ?? '') ? argv[2] : undefined;
  try {
    const parsed = parseArgs({
      args: id === undefined ? argv : [...argv.slice(0, 2), ...argv.slice(3)],
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, host: { type: 'string' }, port: { type: 'string' }, user: { type: 'string' }, json: { type: 'boolean' }, batch: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (id !== undefined) parsed.positionals.splice(2, 0, id);
    return parsed;
  } catch (error) {
    // node:util's parseArgs throws a TypeError with an ERR_PARSE_ARGS_* code for unknown or incomplete options.
    if (String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError((error as Error).message);
    throw error;
  }
}

function parsePort(port: string | undefined): number | undefined {
  if (port === undefined) return undefined;
  const value = Number(port);
  if (!/^\d+$/.test(port) || value > 65535) throw new UsageError(`--port: expected an integer from 0 to 65535 (got ${JSON.stringify(port)})`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv);
  const [command, subcommand] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const configFile = values.config ?? 'config/app.ini';
  if (command === 'config' && subcommand === 'check') {
    const config = await loadConfig(configFile);
    process.stdout.write(`${describeConfig(config)}\n`);
    process.stderr.write(`${configFile}: valid\n`);
    return 0;
  }
  if (command === 'serve') return serve(configFile, values.host, parsePort(values.port));
  if (command === 'legacy') return runLegacyCommand(subcommand, positionals.slice(2), { configFile, batch: values.batch });
  if (command === 'session') return runSessionCommand(subcommand, positionals.slice(2), { configFile, user: values.user, json: values.json === true });
  process.stderr.write(`unknown command: ${positionals.join(' ')}\n${USAGE}\n`);
  return 2;
}

async function serve(configFile: string, host: string | undefined, port: number | undefined): Promise<number> {
  // Listen for signals first: one that arrives while starting still ends in a clean exit 0.
  let signalled: (signal: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => (signalled = resolve));
  // `on`, not `once`: a second Ctrl-C must not fall back to the default exit by signal.
  process.on('SIGTERM', () => signalled('SIGTERM'));
  process.on('SIGINT', () => signalled('SIGINT'));

  const config = await loadConfig(configFile);
  // Loaded only to serve: `config check` and the session commands start faster without fastify.
  const { buildApp } = await loadDemoApp();
  const app = await buildApp(config, { logger: { level: process.env.LOG_LEVEL ?? 'info', stream: process.stderr } as never });
  const listen = { host: host ?? config.server.host, port: port ?? config.server.port };
  // The one line with the URL is keepsake's, in plain text: fastify's own JSON line is held back.
  const level = app.log.level;
  app.log.level = 'silent';
  let address: string;
  try {
    address = await app.listen(listen);
  } catch (error) {
    await app.close();
    const code = (error as { code?: unknown }).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${listen.host}:${listen.port}: ${(error as Error).message}`);
    throw error;
  } finally {
    app.log.level = level;
  }
  process.stderr.write(`keepsake listening on ${address}\n`);

  const signal = await stopRequested;
  app.log.info({ signal }, 'shutting down: no new connections; finishing in-flight requests, closing sockets with 1001, draining the pools');
  // Bounded: whatever is still open after shutdown_timeout_ms is cut, and the exit is still 0.
  setTimeout(() => {
    app.log.warn(`shutdown took longer than server.shutdown_timeout_ms = ${config.server.shutdown_timeout_ms}; exiting anyway`);
    process.exit(0);
  }, config.server.shutdown_timeout_ms).unref();
  await app.close().catch((error: unknown) => app.log.error({ err: error }, 'error while shutting down'));
  app.log.info('shut down');
  // Exit now rather than wait for stray timers or sockets of libraries to let the loop drain.
  process.exit(0);
}

/** The demo app `serve` runs lives in keepsake's repository; the npm package holds the library. */
async function loadDemoApp(): Promise<typeof import('../app/build-app.js')> {
  try {
    return await import('../app/build-app.js');
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND' || !String((error as Error).message).includes('build-app')) throw error;
    throw new CliError('serve runs the demo application, which is in keepsake\'s git repository, not in the npm package: clone the repository and run `npx keepsake serve` there, or register keepsake in your own fastify app (README.md)');
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`keepsake: ${error.message}\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    const known = error instanceof KeepsakeError || error instanceof CliError;
    process.stderr.write(`keepsake: ${known ? (error as Error).message : (error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
