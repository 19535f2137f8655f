/**
 * @module The ini format reads `;` and `#` as the start of a comment even inside an unquoted
 * value, so `password = ab#cd` would load as `ab`, silently. Such a value is refused instead, on
 * the raw text (the parser has already cut it), with the fix: quote it.
 */
import { ConfigError } from '../errors.js';
import { SECRET_KEYS } from './schema.js';


/** @throws ConfigError naming the file, line, section and key (never the value: it may be a secret). */
export function refuseCutValues(text: string, source: string): void {
  let section = '';
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) return;
    const header = /^\[([^\]]*)\]/.exec(trimmed);
    if (header !== null) {
      section = header[1]!.trim();
      return;
    }
    const equals = trimmed.indexOf('=');
    if (equals < 0) return;
    const key = trimmed.slice(0, equals).trim();
    const value = trimmed.slice(equals + 1).trim();
    const where = `${section === '' ? '' : `${section}.`}${key}`;
    if (value.startsWith('"') || value.startsWith("'")) {
      // ini unquotes only a value that ends with its quote: `"ab#cd" ; note` loads as `"ab`.
      if (value.length < 2 || !value.endsWith(value[0]!)) {
        throw new ConfigError(`${where}: a quoted value must end the line (no comment after it), or the ini format cuts it; in ${source} line ${index + 1}`);
      }
      return;
    }
    const glued = gluedCommentMark(value);
    if (glued < 0) return;
    const mark = value[glued];
    const shown = SECRET_KEYS.has(key) ? '' : ` (${JSON.stringify(value.split(/\s[;#]/)[0])})`;
    throw new ConfigError(
      `${where}: the value holds '${mark}'${shown}, which the ini format reads as the start of a comment, cutting the value there; put the value in double quotes (${key} = "…") in ${source} line ${index + 1}`,
    );
  });
}

/**
 * Where a `;` or `#` glued to the text before it would cut `value`, or -1. One after whitespace
 * is a comment as intended (the rest of the line is ignored); a backslash escapes one.
 */
function gluedCommentMark(value: string): number {
  for (let index = 0; index < value.length; index++) {
    const char = value[index];
    if (char === '\\') index++;
    else if (char === ';' || char === '#') return index > 0 && /\s/.test(value[index - 1]!) ? -1 : index;
  }
  return -1;
}
