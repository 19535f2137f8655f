// The history checker's long mode (issue 13): the workload of test/fault/history-checker.test.ts
// for ten minutes by default, run by hand. Writes bench/results/history-<date>-<seed>.md (figures
// and every anomaly); the whole history goes to a .json in the temp dir, to look into an anomaly.
//
//   npx tsc -p tsconfig.json && node dist/bench/history.js            # 10 minutes
//   HISTORY_SECONDS=120 KEEPSAKE_CHECKER_SEED=42 node dist/bench/history.js
//   KEEPSAKE_CHECKER_FAULTS=reply-lost,sigstop node dist/bench/history.js
//   HISTORY_TOPOLOGY=sentinel node dist/bench/history.js            # SENTINEL FAILOVER, CLIENT KILL
//   node dist/bench/history.js /tmp/history-….json                 # check a recorded history again
//
// Needs redis-server on the PATH; never touches the Redis on 6379. Exits 1 when it finds an anomaly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHistory, countByKind } from '../test/support/history.js';
import { faultsFromEnv, noticeOutages, report, runHistory, seedFromEnv, type RunResult, type Topology } from '../test/support/history-run.js';

// A recorded history, checked again (after a change to the checker, or to read it once more).
const recorded = process.argv[2];
if (recorded !== undefined) {
  const result = JSON.parse(fs.readFileSync(recorded, 'utf8')) as RunResult;
  // The fault windows as the current rules draw them from the recorded faults.
  const anomalies = checkHistory({ ...result.history, noticeOutages: noticeOutages(result.faultLog) });
  console.log(report({ ...result, anomalies, figures: { ...result.figures, anomalies: countByKind(anomalies) } }, 200));
  process.exit(anomalies.length === 0 ? 0 : 1);
}

const seconds = Number(process.env.HISTORY_SECONDS ?? 600);
if (!Number.isFinite(seconds) || seconds <= 0) throw new Error('HISTORY_SECONDS must be a positive number');
const clients = Number(process.env.HISTORY_CLIENTS ?? 10);
const seed = seedFromEnv();
const topology = (process.env.HISTORY_TOPOLOGY ?? 'standalone') as Topology;
if (topology !== 'standalone' && topology !== 'sentinel') throw new Error(`HISTORY_TOPOLOGY must be standalone or sentinel (got '${topology}')`);

console.log(`history checker (${topology}): ${seconds} s, ${clients} clients, seed ${seed} (replay with KEEPSAKE_CHECKER_SEED=${seed})`);
const result = await runHistory({ seed, topology, durationMs: seconds * 1000, clients, faults: faultsFromEnv(topology), log: (line) => console.log(line) });
const text = report(result, 200);
console.log(text);

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/results');
fs.mkdirSync(dir, { recursive: true });
const name = `history-${topology}-${new Date().toISOString().slice(0, 10)}-${seconds}s-${seed}`;
const json = path.join(os.tmpdir(), `${name}.json`);
fs.writeFileSync(json, JSON.stringify(result));
fs.writeFileSync(path.join(dir, `${name}.md`), `# History checker, ${new Date().toISOString()}\n\n\`\`\`\n${text}\n\`\`\`\n\nHistory: ${json}\n`);
console.log(`written to bench/results/${name}.md; history in ${json}`);
process.exitCode = result.anomalies.length === 0 ? 0 : 1;
