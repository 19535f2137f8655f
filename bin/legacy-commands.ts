/**
 * @module `keepsake legacy stats|adopt-all`: the operator's side of switching from
 * @fastify/session or express-session. Results go to stdout as one JSON object; progress and
 * messages go to stderr. Exit codes: 0 done, 1 Redis failed (or some sessions could not be
 * adopted: run again), 2 bad usage.
 */
import { consoleLogger, createKeepsakeContainer, loadConfig } from '../src/index.js';
import { kSessionState } from '../src/session/session-manager.js';

export const LEGACY_USAGE = `  keepsake legacy stats --config FILE
  keepsake legacy adopt-all --config FILE [--batch N]`;

export interface LegacyCommandOptions {
  configFile: string;
  batch?: string | undefined;
}

/** Runs `keepsake legacy <action>`; returns the exit code. */
export async function runLegacyCommand(action: string | undefined, args: string[], options: LegacyCommandOptions): Promise<number> {
  const usage = (why: string) => {
    process.stderr.write(`keepsake legacy: ${why}\nusage:\n${LEGACY_USAGE}\n`);
    return 2;
  };
  if (action !== 'stats' && action !== 'adopt-all') return usage(`unknown action '${action ?? ''}'`);
  if (args.length > 0) return usage(`${action} takes no arguments`);
  const batch = options.batch === undefined ? 100 : Number(options.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) return usage(`--batch: expected an integer from 1 to 10000 (got ${JSON.stringify(options.batch)})`);

  const config = await loadConfig(options.configFile);
  if (config.legacy_sessions === undefined) {
    process.stderr.write(`keepsake legacy: ${options.configFile} has no [legacy_sessions] section\n`);
    return 1;
  }
  const container = createKeepsakeContainer(config, { logger: consoleLogger });
  try {
    const legacy = container.resolve('legacySessions')!;
    if (action === 'stats') {
      const stats = await legacy.stats();
      process.stdout.write(`${JSON.stringify(stats)}\n`);
      process.stderr.write(`${stats.left} legacy session(s) left under '${config.legacy_sessions.key_prefix}', ${stats.adopted} adopted so far, ${stats.skippedValues} value(s) skipped\n`);
      return 0;
    }
    const sessions = container.resolve('sessionManager');
    const began = Date.now();
    const report = await legacy.adoptAll(
      // Each adoption gets a request of its own, as a live one would (no cookie, an empty slot).
      { store: (content) => sessions.storeAdopted({ headers: {}, [kSessionState]: null } as never, content), join: async () => null },
      { batch, onBatch: (size, so) => process.stderr.write(`batch ${so.batches}: ${size} key(s); ${so.adopted} adopted, ${so.busy} busy, ${so.failed} failed so far\n`) },
    );
    process.stdout.write(`${JSON.stringify({ ...report, ms: Date.now() - began })}\n`);
    if (report.busy > 0 || report.failed > 0) process.stderr.write(`${report.busy + report.failed} legacy session(s) were busy or failed; run adopt-all again to adopt them\n`);
    return report.failed > 0 ? 1 : 0;
  } finally {
    await container.dispose();
  }
}
