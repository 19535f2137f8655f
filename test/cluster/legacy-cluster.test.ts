// Legacy adoption on a real 3-master Redis Cluster, through two app nodes: the legacy key, the
// claim marker and the session live in different hash slots (every step is one key), concurrent
// first requests on both nodes still end in one session, and adopt-all scans every master.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from 'ioredis';
import { sign } from 'cookie-signature';
import { createKeepsake, type Keepsake } from '../../src/index.js';
import { keySlot } from '../../src/redis/cluster-slot.js';
import { kSessionState } from '../../src/session/session-manager.js';
import { startApp, testPrefix, type TestApp } from '../support/app-server.js';
import { RedisClusterServers } from '../support/redis-cluster.js';
import { sessionCookie } from '../support/session-helpers.js';

const SECRET = 'old-app-secret';
const basket = [{ sku: 'tea', qty: 3 }];
let cluster: RedisClusterServers;
let inspect: Cluster;
let nodes: TestApp[] = [];
let keepsake: Keepsake;
const prefix = testPrefix('legacy-cluster');
const legacyPrefix = testPrefix('legacy-cluster-old');

before(async () => {
  cluster = await RedisClusterServers.start();
  inspect = cluster.client();
  const overrides = {
    session: { key_prefix: prefix },
    redis_connection_pool: { default: { cluster: cluster.clusterSpec() } },
    legacy_sessions: { cookie_name: 'connect.sid', secrets: SECRET, key_prefix: legacyPrefix, user_field: 'user' },
  };
  nodes = [await startApp(overrides), await startApp(overrides)];
  keepsake = await createKeepsake(nodes[0]!.config);
  for (const node of nodes) {
    for (let attempt = 0; (await fetch(`${node.url}/ready`)).status !== 200; attempt++) {
      assert.ok(attempt < 50, 'the app never became ready on the cluster');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
});

after(async () => {
  await Promise.allSettled(nodes.map((node) => node.close()));
  await keepsake?.close();
  await cluster?.stop();
});

/** A session as express-session + connect-redis store it. */
async function seed(legacyId: string, user: string): Promise<void> {
  const json = { cookie: { originalMaxAge: 86400000, expires: new Date(Date.now() + 86400000).toISOString(), httpOnly: true, path: '/' }, user, name: 'Ada', basket };
  await inspect.set(legacyPrefix + legacyId, JSON.stringify(json), 'EX', 3600);
}

test('concurrent first requests on two nodes end in one session; legacy key, marker and session in different slots', async () => {
  const legacyId = 'clusterlegacyidxxxxxxxxxxxxxxxx1';
  await seed(legacyId, 'alice');
  const cookie = `connect.sid=${encodeURIComponent(`s:${sign(legacyId, SECRET)}`)}`;
  const replies = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      for (;;) {
        const reply = await fetch(`${nodes[i % 2]!.url}/api/session`, { headers: { cookie } });
        if (reply.status === 503) continue; // retryable while the claimer works; asserted in e2e
        return { status: reply.status, body: await reply.json(), id: sessionCookie(reply.headers.getSetCookie())?.id };
      }
    }),
  );
  const ids = new Set(replies.map((reply) => reply.id));
  assert.equal(ids.size, 1, 'one session');
  for (const reply of replies) assert.deepEqual([reply.status, reply.body], [200, { user: 'alice', authenticated: true, name: 'Ada', basket }]);
  const [id] = ids;
  assert.equal(await inspect.exists(legacyPrefix + legacyId), 0);
  assert.equal(await inspect.exists(prefix + id!), 1);
  const slots = new Set([keySlot(legacyPrefix + legacyId), keySlot(`${prefix}legacy:${legacyId}`), keySlot(prefix + id!)]);
  assert.equal(slots.size, 3, 'three different slots: the protocol never needs two keys in one command');
});

test('adopt-all scans every master and adopts every legacy session', async () => {
  for (let i = 0; i < 300; i++) await seed(`bulk${String(i).padStart(28, '0')}`, `user${i}`);
  const legacy = keepsake.container.resolve('legacySessions')!;
  const sessions = keepsake.sessionManager;
  const before = await legacy.stats();
  assert.equal(before.left, 300);
  const report = await legacy.adoptAll(
    { store: (content) => sessions.storeAdopted({ headers: {}, [kSessionState]: null } as never, content), join: async () => null },
    { batch: 50 },
  );
  assert.equal(report.adopted, 300);
  assert.ok(report.largestBatch <= 50);
  const afterwards = await legacy.stats();
  assert.equal(afterwards.left, 0);
  assert.ok(afterwards.adopted >= 301);
  // A visitor of one of them comes back: the adopted session, found through its marker.
  const reply = await fetch(`${nodes[1]!.url}/api/session`, { headers: { cookie: `connect.sid=${encodeURIComponent(`s:${sign(`bulk${String(7).padStart(28, '0')}`, SECRET)}`)}` } });
  assert.deepEqual(await reply.json(), { user: 'user7', authenticated: true, name: 'Ada', basket });
});
