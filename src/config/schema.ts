/**
 * @module The config schema: the one place that knows every ini key, its type, range and default.
 * docs/config.md documents each key; a test checks the two agree.
 */
import { z } from 'zod';

/** The built-in development secret; refused when NODE_ENV=production. */
export const DEV_SECRET = 'dev-only-secret-change-me-0123456789abcdef';

const MIN_SECRET_LENGTH = 32;

// ini gives strings (and true/false as booleans); an empty value means "unset".
const unset = (value: unknown) => (value === '' ? undefined : value);

const int = (min: number, max: number) =>
  z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value),
    z.number({ error: `expected an integer from ${min} to ${max}` }).int(`expected an integer from ${min} to ${max}`).min(min, `expected an integer from ${min} to ${max}`).max(max, `expected an integer from ${min} to ${max}`),
  );

const bool = z.preprocess(
  (value) => (value === 'true' ? true : value === 'false' ? false : value),
  z.boolean({ error: 'expected true or false' }),
);

const text = z.string({ error: 'expected a text value' });

const list = z.preprocess(
  (value) => (typeof value === 'string' ? value.split(',').map((part) => part.trim()).filter((part) => part !== '') : value),
  z.array(z.string()),
);

/** As `list`, but an empty entry is kept for the secrets check to refuse: dropping it would shift the positions its messages name. */
const secretList = z.preprocess(
  (value) => (typeof value === 'string' ? value.split(',').map((part) => part.trim()) : value),
  z.array(z.string()),
);

const hostPort = z
  .string()
  .regex(/^[^\s:,]+:\d{1,5}$/, 'expected host:port')
  .refine((value) => {
    const port = Number(value.slice(value.lastIndexOf(':') + 1));
    return Number.isNaN(port) || (port >= 1 && port <= 65535); // not a number: the regex reports it
  }, 'expected host:port with a port from 1 to 65535')
  .transform((value) => {
    const at = value.lastIndexOf(':');
    return { host: value.slice(0, at), port: Number(value.slice(at + 1)) };
  });

const hostPortList = z.preprocess(
  (value) => (typeof value === 'string' ? value.split(',').map((part) => part.trim()).filter((part) => part !== '') : value),
  z.array(hostPort).min(1, 'expected a comma separated list of host:port'),
);

const defaulted = <T extends z.ZodType>(schema: T, value: z.input<T>) => z.preprocess(unset, schema.default(value as never));
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(unset, schema.optional());

/** `[server]`: where the demo server listens and who may open WebSockets. */
export const serverSchema = z.strictObject({
  /** @default '127.0.0.1' */
  host: defaulted(text, '127.0.0.1'),
  /** @default 3000 */
  port: defaulted(int(0, 65535), 3000),
  /** Origins allowed to open WebSockets; `*` allows any. @default ['http://127.0.0.1:3000', 'http://localhost:3000'] */
  ws_allowed_origins: defaulted(list, ['http://127.0.0.1:3000', 'http://localhost:3000']),
  /** Largest WebSocket message accepted; a larger one closes the socket with 1009. @default 65536 */
  ws_max_message_bytes: defaulted(int(1, 16 * 1024 * 1024), 65536),
  /**
   * Most bytes a socket may have waiting to be sent (a client that stops reading while its session
   * keeps changing); past it the socket is closed with 1013, so memory stays bounded. @default 1048576
   */
  ws_max_buffered_bytes: defaulted(int(1024, 1024 * 1024 * 1024), 1048576),
  /** Most open sockets one session may have on one node; one more is closed at once with 1008. @default 32 */
  ws_max_sockets_per_session: defaulted(int(1, 100000), 32),
  /** Time graceful shutdown may take before sockets and pools are cut. @default 4000 */
  shutdown_timeout_ms: defaulted(int(100, 60000), 4000),
  /**
   * fastify's trustProxy, for the client IP a device records at login: false, true (trust every
   * proxy), a hop count, or a comma separated list of proxy addresses/CIDRs. @default false
   */
  trust_proxy: defaulted(
    z.preprocess(
      (value) => (value === 'true' ? true : value === 'false' ? false : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : typeof value === 'string' ? value.split(',').map((part) => part.trim()).filter((part) => part !== '') : value),
      z.union([z.boolean(), z.number().int().min(0).max(100), z.array(z.string()).min(1)], { error: 'expected true, false, a hop count or a comma separated list of proxy addresses' }),
    ),
    false,
  ),
});

/** `[session]`: the cookie, the lifetimes and how sessions are stored. */
export const sessionSchema = z
  .strictObject({
    cookie_name: defaulted(text.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (RFC 6265 token characters)'), 'dmsession'),
    cookie_lifespan: defaulted(int(1, 400 * 86400), 86400),
    absolute_lifespan: defaulted(int(0, 10 * 365 * 86400), 604800),
    cookie_path: defaulted(text.startsWith('/', 'expected a path starting with /'), '/'),
    cookie_domain: optional(text),
    cookie_secure: defaulted(z.union([z.literal('auto'), bool], { error: 'expected auto, true or false' }), 'auto'),
    cookie_same_site: defaulted(z.enum(['lax', 'strict', 'none'], { error: 'expected one of lax, strict, none' }), 'lax'),
    secrets: defaulted(secretList, [DEV_SECRET]),
    key_prefix: defaulted(text.max(64, 'expected at most 64 characters'), 'keepsake:'),
    persist: defaulted(z.enum(['before_response', 'after_response'], { error: 'expected before_response or after_response' }), 'before_response'),
    max_session_bytes: defaulted(int(1, 512 * 1024 * 1024), 1048576),
    redis_connection_pool: defaulted(text, 'default'),
    /** Time an update() may spend retrying against writes of other nodes before it answers 409. */
    update_timeout_ms: defaulted(int(10, 60000), 5000),
    /**
     * Seconds Redis keeps a session that holds nothing yet (no data, flash or user): a cookie-less
     * request that starts a session and writes nothing. Its first write of data gives it
     * cookie_lifespan. 0 = cookie_lifespan. The cookie's Max-Age is cookie_lifespan either way.
     * @default 600
     */
    empty_session_lifespan: defaulted(int(0, 400 * 86400), 600),
    /**
     * Percent of a session's idle lifespan a node may let pass before it refreshes the TTL again
     * on a read. 0 = every request that starts the session refreshes it (HGETALL + PEXPIRE);
     * 1 = most reads are one HGETALL and a session ends between 99 % and 100 % of its lifespan
     * after its last request (docs/lifecycle.md).
     * @default 0
     */
    ttl_refresh_slack: defaulted(int(0, 10), 0),
  })
  .superRefine((session, ctx) => {
    if (session.secrets.length === 0) ctx.addIssue({ code: 'custom', path: ['secrets'], message: 'expected at least one secret' });
    session.secrets.forEach((secret, index) => {
      if (secret === '') {
        ctx.addIssue({ code: 'custom', path: ['secrets'], message: `secrets[${index}] is empty (a stray comma?); expected comma separated secrets of at least ${MIN_SECRET_LENGTH} characters` });
      } else if (secret.length < MIN_SECRET_LENGTH) {
        ctx.addIssue({ code: 'custom', path: ['secrets'], message: `secrets[${index}] has ${secret.length} characters, at least ${MIN_SECRET_LENGTH} expected` });
      }
      if (secret === DEV_SECRET && process.env.NODE_ENV === 'production') {
        ctx.addIssue({ code: 'custom', path: ['secrets'], message: `secrets[${index}] is the built-in development secret, refused when NODE_ENV=production; set SESSION_SECRETS` });
      }
    });
    // Cookie name prefixes (RFC 6265bis 4.1.3): browsers refuse such a cookie without these
    // attributes, so a wrong combination would be a session that never sticks.
    const name = session.cookie_name.toLowerCase();
    if (name.startsWith('__host-')) {
      const wrong = [
        session.cookie_secure !== true && `cookie_secure = true (got ${String(session.cookie_secure)})`,
        session.cookie_path !== '/' && `cookie_path = / (got '${session.cookie_path}')`,
        session.cookie_domain !== undefined && `no cookie_domain (got '${session.cookie_domain}')`,
      ].filter(Boolean);
      if (wrong.length > 0) ctx.addIssue({ code: 'custom', path: ['cookie_name'], message: `'${session.cookie_name}' has the __Host- prefix, which requires ${wrong.join(', ')}` });
    } else if (name.startsWith('__secure-') && session.cookie_secure !== true) {
      ctx.addIssue({ code: 'custom', path: ['cookie_name'], message: `'${session.cookie_name}' has the __Secure- prefix, which requires cookie_secure = true (got ${String(session.cookie_secure)})` });
    }
    if (session.cookie_same_site === 'none' && session.cookie_secure !== true) {
      ctx.addIssue({ code: 'custom', path: ['cookie_same_site'], message: 'none requires cookie_secure = true (browsers drop SameSite=None cookies without Secure)' });
    }
  });

/** `[redis_connection_pool.NAME]`: one named pool of Redis connections. */
export const poolSchema = z
  .strictObject({
    host: defaulted(text, '127.0.0.1'),
    port: defaulted(int(1, 65535), 6379),
    db: defaulted(int(0, 15), 0),
    username: optional(text),
    password: optional(text),
    tls: defaulted(bool, false),
    cluster: optional(hostPortList),
    sentinels: optional(hostPortList),
    sentinel_name: optional(text),
    sentinel_password: optional(text),
    min: defaulted(int(0, 1000), 0),
    max: defaulted(int(1, 1000), 16),
    acquire_timeout_ms: defaulted(int(1, 600000), 500),
    command_timeout_ms: defaulted(int(1, 600000), 1000),
    connect_timeout_ms: defaulted(int(1, 600000), 1000),
    wait_replicas: defaulted(int(0, 100), 0),
    wait_timeout_ms: defaulted(int(1, 600000), 200),
  })
  .superRefine((pool, ctx) => {
    if (pool.min > pool.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `expected min (${pool.min}) <= max (${pool.max})` });
    if (pool.cluster && pool.sentinels) ctx.addIssue({ code: 'custom', path: ['sentinels'], message: 'expected either cluster or sentinels, not both' });
    if (pool.sentinels && !pool.sentinel_name) ctx.addIssue({ code: 'custom', path: ['sentinel_name'], message: 'expected the master name monitored by the sentinels (sentinels is set)' });
    if (pool.cluster && pool.db !== 0) ctx.addIssue({ code: 'custom', path: ['db'], message: 'expected 0: Redis Cluster has only database 0' });
    if (pool.cluster && pool.wait_replicas > 0) {
      ctx.addIssue({ code: 'custom', path: ['wait_replicas'], message: 'expected 0 with cluster: waiting for replicas is offered on a standalone Redis or with Sentinel' });
    }
    if (pool.wait_replicas > 0 && pool.wait_timeout_ms >= pool.command_timeout_ms) {
      ctx.addIssue({ code: 'custom', path: ['wait_timeout_ms'], message: `expected less than command_timeout_ms (${pool.command_timeout_ms}): the write and its WAIT share that bound` });
    }
  });

/**
 * `[legacy_sessions]` (optional): sessions of @fastify/session or express-session stored by
 * connect-redis, adopted on their first use (src/legacy/, docs/migrating.md).
 */
export const legacySessionsSchema = z
  .strictObject({
    /** Their cookie. @default 'sessionId' (@fastify/session's; express-session's is connect.sid) */
    cookie_name: defaulted(text.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (RFC 6265 token characters)'), 'sessionId'),
    /** Their cookie's Path and Domain, so the Set-Cookie that clears it reaches the same cookie. */
    cookie_path: defaulted(text.startsWith('/', 'expected a path starting with /'), '/'),
    cookie_domain: optional(text),
    /** Their secrets, any length (they were chosen for the old library); every one verifies. */
    secrets: secretList,
    /** connect-redis's key prefix. @default 'sess:' */
    key_prefix: defaulted(text, 'sess:'),
    /** The top-level field naming the logged-in user; unset: nobody is logged in. */
    user_field: optional(text),
    redis_connection_pool: defaulted(text, 'default'),
  })
  .superRefine((legacy, ctx) => {
    if (legacy.secrets.length === 0) ctx.addIssue({ code: 'custom', path: ['secrets'], message: 'expected at least one secret (the old library\'s)' });
    legacy.secrets.forEach((secret, index) => {
      if (secret === '') ctx.addIssue({ code: 'custom', path: ['secrets'], message: `secrets[${index}] is empty (a stray comma?); expected the old library's secrets, comma separated` });
    });
  });

export const configSchema = z
  .strictObject({
    server: z.preprocess((value) => value ?? {}, serverSchema),
    session: z.preprocess((value) => value ?? {}, sessionSchema),
    legacy_sessions: legacySessionsSchema.optional(),
    redis_connection_pool: z.preprocess(
      (value) => value ?? { default: {} },
      z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected a pool name of letters, digits, _ and -'), poolSchema),
    ),
  })
  .superRefine((config, ctx) => {
    const name = config.session.redis_connection_pool;
    if (!(name in config.redis_connection_pool)) {
      ctx.addIssue({
        code: 'custom',
        path: ['session', 'redis_connection_pool'],
        message: `expected the name of a [redis_connection_pool.NAME] section; '${name}' has none (have: ${Object.keys(config.redis_connection_pool).join(', ') || 'none'})`,
      });
    }
    const legacyPool = config.legacy_sessions?.redis_connection_pool;
    if (legacyPool !== undefined && !(legacyPool in config.redis_connection_pool)) {
      ctx.addIssue({ code: 'custom', path: ['legacy_sessions', 'redis_connection_pool'], message: `expected the name of a [redis_connection_pool.NAME] section; '${legacyPool}' has none` });
    }
    if (config.legacy_sessions !== undefined && config.legacy_sessions.cookie_name === config.session.cookie_name) {
      // Clearing the old cookie would clear keepsake's own.
      ctx.addIssue({ code: 'custom', path: ['legacy_sessions', 'cookie_name'], message: `expected a name other than session.cookie_name ('${config.session.cookie_name}')` });
    }
    const legacyPrefix = config.legacy_sessions?.key_prefix;
    const ownPrefix = config.session.key_prefix;
    // A scan of either prefix must never meet the other's keys.
    if (legacyPrefix !== undefined && (legacyPrefix.startsWith(ownPrefix) || ownPrefix.startsWith(legacyPrefix))) {
      ctx.addIssue({ code: 'custom', path: ['legacy_sessions', 'key_prefix'], message: `expected a prefix that neither starts with nor begins session.key_prefix ('${ownPrefix}'); got '${legacyPrefix}'` });
    }
  });

export type ServerConfig = z.output<typeof serverSchema>;
export type SessionConfig = z.output<typeof sessionSchema>;
export type PoolConfig = z.output<typeof poolSchema>;
export type LegacySessionsConfig = z.output<typeof legacySessionsSchema>;

/** The validated, frozen configuration every part of keepsake reads. */
export type KeepsakeConfig = z.output<typeof configSchema> & {
  /** Where the config came from (a file path, or "options" for code). */
  readonly source: string;
};

/** What a caller may pass instead of an ini file: any subset, values as in the ini file or typed. */
export type KeepsakeConfigInput = {
  server?: Record<string, unknown>;
  session?: Record<string, unknown>;
  redis_connection_pool?: Record<string, Record<string, unknown>>;
  /** Adopt the sessions of @fastify/session or express-session (see `[legacy_sessions]`). */
  legacy_sessions?: Record<string, unknown>;
};

/** Keys whose values are never printed, not even when invalid. */
export const SECRET_KEYS = new Set(['secrets', 'password', 'sentinel_password']);
