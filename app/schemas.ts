/**
 * @module The demo's request bodies, validated by zod (DEMO-APP.md gives the limits). Fields the
 * contract does not name are dropped, never stored (a client may send more than a route reads).
 */
import { z } from 'zod';

export const MAX_QTY = 999;

export const itemSchema = z.object({
  sku: z.string().min(1).max(32),
  qty: z.number().int().min(1).max(MAX_QTY),
});
export type Item = z.infer<typeof itemSchema>;

export const nameSchema = z.object({ name: z.string().min(1).max(64) });

export const loginSchema = z.object({
  username: z.string().regex(/^[a-z0-9_-]{1,32}$/, 'expected 1 to 32 characters of a-z, 0-9, _ and -'),
});

export const skuParamsSchema = z.object({ sku: z.string().min(1).max(32) });

// Any length: a handle that is not one of the user's is a 404, whatever it looks like.
export const handleParamsSchema = z.object({ handle: z.string().min(1) });
