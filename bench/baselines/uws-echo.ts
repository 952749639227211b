/**
 * Baseline (c), the frontend limit: a bare uWebSockets.js server that echoes every WebSocket
 * message unchanged, fed the same frames as Skiff. Runs as a child process (lib/child.ts).
 * Same uWS settings as Skiff's WebSocket route: no compression, large frames allowed.
 */
import uWS from '../../src/http/uws.js';
import { serveParent } from '../lib/child.js';

const app = uWS.App();
app.ws('/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 256 * 1024 * 1024,
  maxBackpressure: 256 * 1024 * 1024,
  idleTimeout: 120,
  message: (ws, message, isBinary) => {
    ws.send(message, isBinary, false);
  },
});
app.listen('127.0.0.1', 0, (token) => {
  if (!token) {
    process.send!({ type: 'failed', message: 'cannot listen' });
    return;
  }
  serveParent({ rss: () => process.memoryUsage().rss }, () => {
    uWS.us_listen_socket_close(token);
    process.exit(0);
  });
  process.send!({ type: 'ready', port: uWS.us_socket_local_port(token), native: /\[native code\]/.test(String(uWS.App)) });
});
