// Where a server's CPU goes, from a V8 `.cpuprofile` (node --cpu-prof): self time by package
// (ioredis, fastify, keepsake's own dist/src, node internals, socket writes, GC, idle) and the
// heaviest functions. The same file opens as a flame graph in Chrome DevTools (Performance →
// load profile) or https://www.speedscope.app. Run by hand (docs/benchmarks.md, "Where the time goes"):
//
//   node dist/bench/profile-summary.js /tmp/prof/CPU.<...>.cpuprofile [top=30]

import fs from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface Profile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (file === undefined) {
  console.error('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(process.argv[3] ?? 30);
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));

/** Which part of the process a frame belongs to. */
function part(frame: CallFrame): string {
  const pkg = /node_modules\/(@[^/]+\/[^/]+|[^/]+)\//.exec(frame.url);
  if (pkg !== null) return pkg[1]!;
  if (frame.url.includes('/dist/src/')) return 'keepsake';
  if (frame.functionName === 'writev' || frame.functionName === 'writeUtf8String' || frame.functionName === 'writeBuffer') return 'socket writes';
  if (frame.url.startsWith('node:')) return 'node internals';
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : 'native';
  return 'other';
}

const byPart = new Map<string, number>();
const byFunction = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const frame = frames.get(id)!;
  const delta = profile.timeDeltas[i] ?? 0;
  total += delta;
  byPart.set(part(frame), (byPart.get(part(frame)) ?? 0) + delta);
  const where = frame.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/');
  const name = `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + delta);
});

const busy = total - (byPart.get('(idle)') ?? 0);
const row = (name: string, us: number) => `| ${name} | ${((100 * us) / total).toFixed(1)} % | ${name.startsWith('(idle)') ? '—' : `${((100 * us) / busy).toFixed(1)} %`} |`;
const shown = (us: number) => us / total >= 0.001;
console.log(`${(total / 1e6).toFixed(1)} s sampled, ${((100 * busy) / total).toFixed(1)} % busy\n`);
console.log('| part | of all samples | of busy time |\n| --- | ---: | ---: |');
for (const [name, us] of [...byPart].sort((a, b) => b[1] - a[1])) if (shown(us)) console.log(row(name, us));
console.log('\n| function (self time) | of all samples | of busy time |\n| --- | ---: | ---: |');
for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(row(name, us));
