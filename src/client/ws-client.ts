/**
 * The WebSocket client in Node, over the `ws` package (Node 20 has no global WebSocket). It is
 * `client.ts`'s SkiffClient with a `ws` socket; by default it neither reconnects nor bounds the
 * queries in flight (tools and benchmarks set their own window), unless the options say so.
 */
import WebSocket from 'ws';
import { SkiffClient as Client, type ClientOptions, type WebSocketLike } from './client.js';

export type {
  InferRequest, FeedbackRequest, CallOptions, ClientOptions, ClientState, InferCall, InferBatch, ReconnectOptions, WebSocketLike,
} from './client.js';

export interface NodeClientOptions extends ClientOptions {
  /** Largest server message accepted, in bytes (default 64 MiB). */
  maxPayload?: number;
}

/** A `createSocket` for Node: a `ws` socket without compression. */
export function nodeSocket(maxPayload = 64 * 1024 * 1024): (url: string) => WebSocketLike {
  return (url) => new WebSocket(url, { perMessageDeflate: false, maxPayload }) as unknown as WebSocketLike;
}

export type SkiffClient = Client;
export const SkiffClient = {
  /** Opens a connection; rejects if the handshake fails. */
  connect(url: string, opts: NodeClientOptions = {}): Promise<Client> {
    return Client.connect(url, {
      reconnect: false, maxInFlight: Number.MAX_SAFE_INTEGER, createSocket: nodeSocket(opts.maxPayload), ...opts,
    });
  },
};
