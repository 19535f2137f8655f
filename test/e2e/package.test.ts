/**
 * The package as npm ships it: `npm pack` makes a tarball that a fresh ESM project can import,
 * type-check against (with SessionValues declared by declaration merging) and run the CLI of.
 * The docs' examples (docs/examples/*.ts, written `from 'keepsake'` as users write them) are
 * type-checked here, against the packed types.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { testPrefix } from '../support/app-server.js';
import { dropPrefix, inspector } from '../support/session-helpers.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

interface Manifest {
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
}

let tmp: string;
let project: string;
let installed: string;
let packedFiles: string[];
let manifest: Manifest;
let redis: Redis;
let typeCheck: Promise<Run>;
const prefix = testPrefix('package');

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'keepsake-package-'));
  redis = inspector();
  // --ignore-scripts: `prepare` (= the tsc build) has just run as the first step of `npm test`, so
  // dist/ is current. Running it again would take ~30 s and rewrite dist/ under the test files
  // running beside this one. That `prepare` builds is asserted below.
  const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], repo);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  packedFiles = info!.files.map((file) => file.path);

  // The fresh project: package.json with "type": "module" and the tarball unpacked where
  // `npm install <tarball>` puts it. Its dependencies are linked from this repo's node_modules
  // rather than installed: an install needs registry metadata, which the npm cache of a CI that
  // ran `npm ci` does not hold (it would go to the network, or take a minute). Only the packages
  // the tarball's package.json lists under "dependencies" are linked, so code importing a package
  // it does not declare fails here as it would for a user. Their own dependencies resolve from
  // where they really are (Node follows the links), as an install would hoist them.
  project = join(tmp, 'fresh-app');
  installed = join(project, 'node_modules', 'keepsake');
  await mkdir(installed, { recursive: true });
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const untar = await run('tar', ['-xzf', join(tmp, info!.filename), '-C', installed, '--strip-components=1'], tmp);
  assert.equal(untar.code, 0, untar.stderr);
  manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as Manifest;
  // @types/node: what the TypeScript user of a Node library has among their own devDependencies.
  for (const name of [...Object.keys(manifest.dependencies), '@types/node']) {
    const link = join(project, 'node_modules', name);
    await mkdir(dirname(link), { recursive: true });
    await symlink(join(repo, 'node_modules', name), link, 'dir');
  }
  // What npm does with "bin": a link in node_modules/.bin, which is where `npx` looks first.
  await mkdir(join(project, 'node_modules', '.bin'), { recursive: true });
  for (const [name, path] of Object.entries(manifest.bin)) {
    await symlink(join('..', 'keepsake', path), join(project, 'node_modules', '.bin', name));
  }
  // tsc takes most of this file's time: it starts now and runs while the tests before its own do.
  typeCheck = typeCheckProject();
  typeCheck.catch(() => undefined); // awaited, and reported, by its test
});

after(async () => {
  await dropPrefix(redis, prefix).catch(() => undefined);
  redis.disconnect();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
});

test('the tarball ships the built code with its types, the CLI, the demo page, the config and the docs, and no tests', () => {
  for (const path of [
    'package.json',
    'README.md',
    'dist/src/index.js',
    'dist/src/index.d.ts',
    'bin/keepsake.js',
    'dist/bin/cli.js',
    'dist/app/build-app.js',
    'app/public/index.html',
    'config/app.ini',
    'docs/getting-started.md',
    'docs/config.md',
    'docs/errors.md',
    'docs/demo-page.png',
  ]) {
    assert.ok(packedFiles.includes(path), `${path} is not in the package`);
  }
  for (const path of packedFiles) {
    assert.ok(!/^(dist\/)?(test|bench)\//.test(path), `${path} should not be shipped`);
  }
  assert.equal(manifest.scripts.prepare, 'npm run build', 'a git install or a publish builds dist/ through prepare');
  assert.deepEqual(Object.keys(manifest.exports).sort(), ['.', './package.json']);
});

test('a fresh ESM project imports keepsake and keeps a session in Redis through the packaged plugin', async () => {
  await writeFile(
    join(project, 'visit.mjs'),
    `import Fastify from 'fastify';
import * as keepsake from 'keepsake';
const { createKeepsake, KeepsakeError, SessionManager, SessionReadOnlyError } = keepsake;
const ks = await createKeepsake({ session: { key_prefix: process.env.PREFIX } });
const app = Fastify();
await app.register(ks.plugin);
app.get('/visit', async (request) => {
  const session = await ks.sessionManager.start(request);
  return { visits: await session.data.update('visits', (n = 0) => n + 1) };
});
app.get('/health', async () => ({ status: 'ok' }));
app.addHook('onClose', () => ks.close());
const first = await app.inject('/visit');
const cookie = first.headers['set-cookie'].split(';')[0];
const second = await app.inject({ url: '/visit', headers: { cookie } });
const health = await app.inject('/health');
await app.close();
const error = new SessionReadOnlyError('put()', 'name');
console.log(JSON.stringify({
  exports: Object.keys(keepsake).sort(),
  managerIsClass: typeof SessionManager === 'function' && ks.sessionManager instanceof SessionManager,
  error: { code: error.code, isKeepsakeError: error instanceof KeepsakeError },
  first: [first.statusCode, first.json()],
  second: [second.statusCode, second.json(), second.headers['set-cookie'] ?? null],
  health: [health.statusCode, health.headers['set-cookie'] ?? null],
  cookie,
}));
`,
  );
  const result = await run(process.execPath, ['visit.mjs'], project, { PREFIX: prefix });
  assert.equal(result.code, 0, result.stderr);
  const out = JSON.parse(result.stdout) as {
    exports: string[];
    managerIsClass: boolean;
    error: { code: string; isKeepsakeError: boolean };
    first: [number, unknown];
    second: [number, unknown, unknown];
    health: [number, unknown];
    cookie: string;
  };
  for (const name of ['createKeepsake', 'loadConfig', 'SessionManager', 'Session', 'SessionData', 'KeepsakeError', 'SessionReadOnlyError', 'sessionPlugin', 'websocketPlugin', 'Connection']) {
    assert.ok(out.exports.includes(name), `keepsake does not export ${name}`);
  }
  assert.equal(out.managerIsClass, true);
  assert.deepEqual(out.error, { code: 'ERR_SESSION_READ_ONLY', isKeepsakeError: true });
  assert.deepEqual(out.first, [200, { visits: 1 }]);
  assert.deepEqual(out.second, [200, { visits: 2 }, null], 'the cookie names the stored session; no new cookie');
  assert.deepEqual(out.health, [200, null], 'a route that never starts a session sets no cookie');
  const id = decodeURIComponent(out.cookie.slice(out.cookie.indexOf('=') + 1)).split('.')[0]!;
  const ttl = await redis.ttl(`${prefix}${id}`);
  assert.ok(ttl > 86_000 && ttl <= 86_400, `the session key has the cookie_lifespan TTL (got ${ttl})`);
});

test('npx keepsake config check runs from the fresh project: exit 0 with secrets masked, or the bad key named', async () => {
  const secret = 'package-test-secret-0123456789abcdefghij';
  const ini = (sameSite: string) => `[session]\ncookie_name = shop\nsecrets = \${SHOP_SECRETS}\ncookie_same_site = ${sameSite}\n\n[redis_connection_pool.default]\nhost = 127.0.0.1\n`;
  await writeFile(join(project, 'shop.ini'), ini('strict'));
  await writeFile(join(project, 'bad.ini'), ini('loose'));
  const check = (file: string) => run('npx', ['--no', 'keepsake', 'config', 'check', '--config', file], project, { SHOP_SECRETS: secret });
  const [valid, invalid] = await Promise.all([check('shop.ini'), check('bad.ini')]);

  assert.equal(valid.code, 0, valid.stderr);
  const shown = JSON.parse(valid.stdout) as { session: { cookie_name: string; cookie_same_site: string; secrets: string[] } };
  assert.equal(shown.session.cookie_name, 'shop');
  assert.equal(shown.session.cookie_same_site, 'strict');
  assert.ok(!valid.stdout.includes(secret) && !valid.stderr.includes(secret), 'the secret is never printed');

  assert.notEqual(invalid.code, 0);
  assert.match(invalid.stderr, /session\.cookie_same_site/);
  assert.match(invalid.stderr, /bad\.ini/);
  assert.ok(!invalid.stderr.includes(secret));
});

test('TypeScript (NodeNext) type-checks the docs examples and a SessionValues declaration against the packed types', async () => {
  // Every bare import of the shipped declarations must be a declared dependency with types,
  // or a TypeScript user without skipLibCheck gets "Could not find a declaration file".
  const declarations = await listFiles(join(installed, 'dist'), '.d.ts');
  for (const file of declarations) {
    const text = await readFile(file, 'utf8');
    for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*'([^'.][^']*)'/g)) {
      if (specifier!.startsWith('node:')) continue;
      const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!;
      assert.ok(name in manifest.dependencies, `${relative(installed, file)} imports '${name}', which is not in "dependencies"`);
      const typesPackage = `@types/${name.replace(/^@(.*)\//, '$1__')}`;
      assert.ok(await hasOwnTypes(name) || typesPackage in manifest.dependencies, `'${name}' has no types of its own: ${typesPackage} belongs in "dependencies"`);
    }
  }

  // The docs' examples travel in the package (docs/ is in "files"): the shipped copies are checked.
  const examples = (await listFiles(join(installed, 'docs', 'examples'), '.ts')).map((file) => relative(join(installed, 'docs'), file));
  for (const example of ['examples/readme-tour.ts', 'examples/getting-started/server.ts']) {
    assert.ok(examples.includes(example), `${example} is not in the package`);
  }
  const tsc = await typeCheck;
  assert.equal(tsc.code, 0, `tsc failed:\n${tsc.stdout}${tsc.stderr}`);
});

test('the getting-started app runs as docs/getting-started.md says: visits counted, name kept, bad input a 400, SIGTERM exits 0', async () => {
  const compiled = await typeCheck; // tsc also emitted the examples' JavaScript into out/
  assert.equal(compiled.code, 0, 'the examples compile');
  const server = join(project, 'out', 'examples', 'getting-started', 'server.js');
  // The guide has users copy the shipped config/app.ini; here on a free port and a test key prefix.
  const shipped = await readFile(join(installed, 'config', 'app.ini'), 'utf8');
  await mkdir(join(project, 'config'), { recursive: true });
  await writeFile(join(project, 'config', 'app.ini'), shipped.replace(/^port = 3000$/m, 'port = 0').replace(/^key_prefix = .*$/m, `key_prefix = ${prefix}`));

  const child = spawn(process.execPath, [server], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let log = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not listen within 20 s:\n${log}`)), 20_000);
      const read = (chunk: Buffer) => {
        log += chunk.toString('utf8');
        const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
        if (match !== null) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
      void exited.then(() => reject(new Error(`the example exited:\n${log}`)));
    });

    const first = await fetch(`${url}/hello`);
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), { hello: 'stranger', visits: 1 });
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    assert.match(cookie, /^dmsession=/);
    const renamed = await fetch(`${url}/name`, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Ada' }) });
    assert.deepEqual([renamed.status, await renamed.json()], [200, { name: 'Ada' }]);
    const second = await fetch(`${url}/hello`, { headers: { cookie } });
    assert.deepEqual([second.status, await second.json()], [200, { hello: 'Ada', visits: 2 }]);
    const bad = await fetch(`${url}/name`, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'ERR_VALIDATION');
  } finally {
    child.kill('SIGTERM');
  }
  const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref())]);
  if (code === 'still running') child.kill('SIGKILL');
  assert.equal(code, 0, `exit after SIGTERM:\n${log}`);
});

/**
 * Writes a TypeScript file using the packed types, copies the shipped docs examples next to it and
 * runs the repo's tsc over them, as a fresh project's `npx tsc` would.
 */
async function typeCheckProject(): Promise<Run> {
  await writeFile(
    join(project, 'typed-session.ts'),
    `import type { FastifyRequest } from 'fastify';
import { SessionReadOnlyError, type Connection, type SessionManager } from 'keepsake';

declare module 'keepsake' {
  interface SessionValues { name: string; visits: number }
}

export async function greet(sessions: SessionManager, request: FastifyRequest): Promise<string> {
  const session = await sessions.start(request);
  const name: string | undefined = session.data.get('name');
  const visits: number | undefined = await session.data.update('visits', (n = 0) => n + 1);
  // @ts-expect-error visits is declared a number
  session.data.put('visits', 'many');
  // @ts-expect-error a key SessionValues does not declare
  session.data.get('nickname');
  return \`\${name ?? 'stranger'} (\${visits})\`;
}

export function onOpen(conn: Connection): void {
  const name: string | undefined = conn.session.data.get('name');
  // @ts-expect-error the socket's view has no put()
  conn.session.data.put('name', 'x');
  conn.send({ hello: name ?? conn.user });
}

export const readOnlyCode: string = new SessionReadOnlyError('put()').code;
`,
  );
  // The docs' examples travel in the package (docs/ is in "files"): check the shipped copies.
  await cp(join(installed, 'docs', 'examples'), join(project, 'examples'), { recursive: true });
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      // What `tsc --init` gives a Node project today, with NodeNext resolution (package "exports").
      // (Emitting, so that the getting-started app can be run below.)
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, types: ['node'], outDir: 'out' },
      include: ['typed-session.ts', 'examples/**/*.ts'],
    }),
  );
  return run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project);
}

async function listFiles(dir: string, suffix: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith(suffix)).map((entry) => join(entry.parentPath, entry.name));
}

/** True when the installed package `name` ships its own declarations. */
async function hasOwnTypes(name: string): Promise<boolean> {
  const dir = join(project, 'node_modules', name);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { types?: string; typings?: string; exports?: unknown };
  if (pkg.types !== undefined || pkg.typings !== undefined) return true;
  if (JSON.stringify(pkg.exports ?? null).includes('"types"')) return true;
  return readdirSync(dir).includes('index.d.ts');
}
