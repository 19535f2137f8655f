/**
 * @module The typed flash: an app declares its flash messages once, by declaration merging, as it
 * declares SessionValues, and `session.flash` / `session.flashed` are checked against it.
 * @example
 * declare module 'keepsake' {
 *   interface FlashValues { notice: string }
 * }
 * session.flash('notice', 'Saved');            // next request: session.flashed('notice') is string | undefined
 */

/** An app's flash keys and their value types (empty: any key, values unknown). */
export interface FlashValues {}

/** A flash key: any string until FlashValues declares some, then only those. */
export type FlashKey = [keyof FlashValues] extends [never] ? string : Extract<keyof FlashValues, string>;

/** The value type of flash key `K` (`unknown` for an undeclared key). */
export type FlashValue<K extends string> = K extends keyof FlashValues ? FlashValues[K] : unknown;
