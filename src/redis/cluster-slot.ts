/**
 * @module Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384,
 * exactly as Redis computes them (cluster spec, "Keys distribution model"). The CRC can be resumed
 * from a state, so a search over the last few characters of a key costs a few table steps per try.
 */

/** Number of hash slots of a Redis Cluster. */
export const SLOT_COUNT = 16384;

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[byte] = crc;
}

/** One CRC16 step: the state after feeding `byte` to state `crc`. */
export function crc16Step(crc: number, byte: number): number {
  return ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
}

/** CRC16/XMODEM of `bytes`, continuing from state `crc` (0 to start). */
export function crc16(bytes: Uint8Array, crc = 0): number {
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

/**
 * The part of `key` Redis hashes: the text between the first `{` and the next `}` when that is
 * non-empty, else the whole key.
 */
export function hashedPart(key: Buffer): Buffer {
  const open = key.indexOf(0x7b);
  if (open === -1) return key;
  const close = key.indexOf(0x7d, open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}

/** The hash slot of `key`, as CLUSTER KEYSLOT answers. */
export function keySlot(key: string | Buffer): number {
  return crc16(hashedPart(Buffer.isBuffer(key) ? key : Buffer.from(key))) % SLOT_COUNT;
}

/**
 * True when every key starting with `prefix` hashes to one slot, whatever follows (the prefix holds
 * a complete, non-empty `{hash tag}`). Such a prefix puts every session on one master.
 */
export function prefixPinsSlot(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open === -1) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}
