/**
 * @module `${NAME}` and `${NAME:-default}` in ini values, resolved from the environment.
 */

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** A placeholder that cannot be resolved; the caller adds where it was (never the value: it may be a secret). */
export class PlaceholderError extends Error {}

/** Thrown for `${NAME}` without a default when NAME is unset. */
export class MissingVariableError extends PlaceholderError {
  constructor(readonly variable: string) {
    super(`environment variable ${variable} is not set (use \${${variable}:-default} for a fallback)`);
  }
}

/** Thrown for a `${` that does not open a placeholder (no closing `}`, or not a variable name), as sh refuses it. */
export class MalformedPlaceholderError extends PlaceholderError {
  constructor() {
    super('"${" that is not a placeholder: expected ${NAME} or ${NAME:-default}, NAME of letters, digits and _');
  }
}

/** Replaces every placeholder in `value`; an empty variable counts as unset, as in sh's `:-`. */
export function interpolate(value: string, env: NodeJS.ProcessEnv): string {
  if (value.replace(PLACEHOLDER, '').includes('${')) throw new MalformedPlaceholderError();
  return value.replace(PLACEHOLDER, (_match, name: string, fallback: string | undefined) => {
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw new MissingVariableError(name);
  });
}
