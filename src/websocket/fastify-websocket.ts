/**
 * @module @fastify/websocket as an optional peer: loaded only when an app declares WebSocket routes
 * and has not registered it itself.
 */
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../errors.js';

/** The plugin, imported on first use (apps without WebSocket routes need not install it). */
export async function importFastifyWebsocket(): Promise<typeof import('@fastify/websocket').default> {
  try {
    return (await import('@fastify/websocket')).default;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new ConfigError("keepsake's WebSocket routes need @fastify/websocket (an optional peer dependency): npm install @fastify/websocket");
  }
}

/**
 * The app registered @fastify/websocket itself: its options rule. Says so when its message limit
 * is not keepsake's `server.ws_max_message_bytes` (ws enforces it per server, not per route).
 */
export function useAppWebsocket(app: FastifyInstance, maxMessageBytes: number): void {
  const options = (app as FastifyInstance & { websocketServer?: { options?: { maxPayload?: number } } }).websocketServer?.options;
  const maxPayload = options?.maxPayload ?? 100 * 1024 * 1024;
  if (maxPayload !== maxMessageBytes) {
    app.log.warn({ maxPayload, ws_max_message_bytes: maxMessageBytes }, 'keepsake: @fastify/websocket was registered by the app, whose maxPayload applies to WebSocket messages, not server.ws_max_message_bytes; pass options: { maxPayload } to match');
  }
}
