import { createServer } from 'node:net';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import uWS from './uws.js';
import { SkiffError } from '../errors.js';

/**
 * Listen on (host, port) exclusively. uWebSockets.js sets SO_REUSEPORT by default, so a second
 * server on the same port would start without a word and share the traffic (answering from
 * separate state); LIBUS_LISTEN_EXCLUSIVE_PORT turns that off. A port that is taken fails the
 * start with PORT_IN_USE, a message naming the port and the option to change. `option` names
 * the flag ("--port", "--admin-port") for that message.
 */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

export async function listenExclusive(app: TemplatedApp, host: string, port: number, option: string): Promise<us_listen_socket> {
  const token = await new Promise<us_listen_socket | false>((resolve) => {
    // The native listen takes (host, port, options, cb); the bundled types only declare (port, options, cb).
    (app as unknown as { listen(h: string, p: number, o: number, cb: (t: us_listen_socket | false) => void): void })
      .listen(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (t) => resolve(t));
  });
  if (token) return token;
  if (await portTaken(host, port)) {
    throw new SkiffError('PORT_IN_USE', `port ${port} is already in use on ${host}: another server (maybe another skiff) holds it; choose another with ${option} N (0 = any free port)`);
  }
  throw new SkiffError('CONFIG_INVALID', `cannot listen on ${host}:${port} (is ${host} an address of this machine, and may this user bind port ${port}?); choose another with ${option} N or the address`);
}

/** Whether binding (host, port) fails with EADDRINUSE (to tell "taken" from other failures). */
function portTaken(host: string, port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(false)));
  });
}
