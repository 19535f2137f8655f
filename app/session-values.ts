/**
 * @module The demo's session shape, declared once: get/put/update are checked against it.
 */
import type { Item } from './schemas.js';

declare module '../src/session/session-data.js' {
  interface SessionValues {
    name: string;
    basket: Item[];
  }
}
