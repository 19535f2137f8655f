/**
 * @module Loads an ini file (or options given in code) into a frozen, validated KeepsakeConfig.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseIni } from 'ini';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { refuseCutValues } from './inline-comment-check.js';
import { interpolate, PlaceholderError } from './interpolate.js';
import { configSchema, SECRET_KEYS, type KeepsakeConfig, type KeepsakeConfigInput } from './schema.js';

export interface LoadConfigOptions {
  /** Environment for `${NAME}` placeholders and NODE_ENV. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Values that replace the file's, key by key (tests use this for a per-test key_prefix). */
  overrides?: KeepsakeConfigInput;
}

/**
 * Reads and validates an ini file.
 * @example const config = await loadConfig('config/app.ini');
 * @throws ConfigError naming the file, section, key and what was expected.
 */
export async function loadConfig(file: string, options: LoadConfigOptions = {}): Promise<KeepsakeConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`, { cause: error });
  }
  return parseConfigText(text, file, options);
}

/** Validates ini text; `source` names it in error messages. */
export function parseConfigText(text: string, source: string, options: LoadConfigOptions = {}): KeepsakeConfig {
  const env = options.env ?? process.env;
  refuseCutValues(text, source);
  const raw = resolvePlaceholders(parseIni(text), source, env, []);
  return validateConfig(merge(raw, options.overrides ?? {}), source, env);
}

/** Validates options given in code (every key optional, as in the ini file). */
export function validateConfig(input: KeepsakeConfigInput, source = 'options', env: NodeJS.ProcessEnv = process.env): KeepsakeConfig {
  const result = configSchema.safeParse(withEnvironmentSecrets(input, env), { reportInput: true });
  if (!result.success) {
    const lines = result.error.issues.map((issue) => describeIssue(issue, source));
    throw new ConfigError(lines.length === 1 ? lines[0]! : `${lines.length} problems:\n  ${lines.join('\n  ')}`);
  }
  return deepFreeze({ ...result.data, source });
}

/** No `secrets` (or an empty one): `${SESSION_SECRETS:-<development secret>}`, as docs/config.md says. */
function withEnvironmentSecrets(input: KeepsakeConfigInput, env: NodeJS.ProcessEnv): KeepsakeConfigInput {
  const secrets = (input.session as { secrets?: unknown } | undefined)?.secrets;
  if ((secrets !== undefined && secrets !== '') || env.SESSION_SECRETS === undefined || env.SESSION_SECRETS === '') return input;
  return { ...input, session: { ...input.session, secrets: env.SESSION_SECRETS } } as KeepsakeConfigInput;
}

function describeIssue(issue: z.core.$ZodIssue, source: string): string {
  const path = issue.path.map(String);
  const input = (issue as { input?: unknown }).input;
  if (path.length === 0 && issue.code === 'unrecognized_keys') {
    // At the top of an ini file an object is a section; anything else a key before any section.
    const inFile = isPlainObject(input) ? input : {};
    const sections = issue.keys.filter((key) => isPlainObject(inFile[key])).map((key) => `[${key}]`);
    const loose = issue.keys.filter((key) => !isPlainObject(inFile[key]));
    const problems = [
      ...(sections.length > 0 ? [`unknown section(s) ${sections.join(', ')}`] : []),
      ...(loose.length > 0 ? [`key(s) outside any section: ${loose.join(', ')}`] : []),
    ];
    return `${problems.join('; ')} (expected [server], [session] and [redis_connection_pool.NAME] sections) in ${source}`;
  }
  if (path.length === 2 && path[0] === 'redis_connection_pool' && issue.code === 'invalid_type' && issue.expected === 'object') {
    // `[redis_connection_pool]` without a name: its keys look like pools to the schema.
    return `[redis_connection_pool]: key ${path[1]} outside a named pool: expected a [redis_connection_pool.NAME] section (for example [redis_connection_pool.default]) in ${source}`;
  }
  // The first segment is the section; a pool's section is [redis_connection_pool.NAME].
  const sectionLength = path[0] === 'redis_connection_pool' ? 2 : 1;
  const section = path.slice(0, sectionLength).join('.');
  const key = path.slice(sectionLength).join('.');
  const where = key === '' ? `[${section}]` : `${section}.${key}`;
  const secret = path.some((part) => SECRET_KEYS.has(part));
  const got = secret || input === undefined || typeof input === 'object' ? '' : ` (got ${JSON.stringify(input)})`;
  const message = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message;
  return `${where}: ${message}${got} in ${source}`;
}

function resolvePlaceholders(value: unknown, source: string, env: NodeJS.ProcessEnv, path: string[]): unknown {
  if (typeof value === 'string') {
    try {
      return interpolate(value, env);
    } catch (error) {
      if (error instanceof PlaceholderError) throw new ConfigError(`${path.join('.')}: ${error.message} in ${source}`);
      throw error;
    }
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, resolvePlaceholders(inner, source, env, [...path, key])]));
  }
  return value;
}

function merge(base: unknown, overrides: unknown): KeepsakeConfigInput {
  if (!isPlainObject(base) || !isPlainObject(overrides)) return (overrides ?? base) as KeepsakeConfigInput;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    out[key] = isPlainObject(value) && isPlainObject(out[key]) ? merge(out[key], value) : value;
  }
  return out as KeepsakeConfigInput;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The config as text for `keepsake config check`, secrets and passwords masked. */
export function describeConfig(config: KeepsakeConfig): string {
  return JSON.stringify(
    config,
    (key, value) => {
      if (!SECRET_KEYS.has(key) || value === undefined) return value;
      return Array.isArray(value) ? value.map((secret: string) => `*** (${secret.length} characters)`) : '***';
    },
    2,
  );
}
