/**
 * @module `${NAME}` and `${NAME:-default}` in ini values, resolved from the environment.
 */

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Thrown for `${NAME}` without a default when NAME is unset; the caller adds where it was. */
export class MissingVariableError extends Error {
  constructor(readonly variable: string) {
    super(`environment variable ${variable} is not set (use \${${variable}:-default} for a fallback)`);
  }
}

/** Replaces every placeholder in `value`; an empty variable counts as unset, as in sh's `:-`. */
export function interpolate(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(PLACEHOLDER, (_match, name: string, fallback: string | undefined) => {
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw new MissingVariableError(name);
  });
}
