/**
 * Helper process for the idle-connections scenario: opens N WebSocket connections to a URL and
 * keeps them open, silent, until stopped. A separate process, so its sockets count against its
 * own file-descriptor limit and its CPU never shows up in the generator's threads.
 *
 * argv: <ws-url> <count>
 */
import WebSocket from 'ws';
import { serveParent } from './child.js';

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!url || !(count >= 1)) throw new Error('usage: idle-clients <ws-url> <count>');

const sockets: WebSocket[] = [];
const OPEN_AT_ONCE = 200;

function open(): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url!, { perMessageDeflate: false });
    ws.once('open', () => {
      sockets.push(ws);
      resolve(true);
    });
    ws.once('error', () => resolve(false));
  });
}

let opened = 0;
let failed = 0;
const t0 = performance.now();
for (let i = 0; i < count; i += OPEN_AT_ONCE) {
  const n = Math.min(OPEN_AT_ONCE, count - i);
  const ok = await Promise.all(Array.from({ length: n }, open));
  for (const o of ok) (o ? opened++ : failed++);
}
const openMs = Math.round(performance.now() - t0);
// Collect the garbage of 5,000 handshakes now, not during the measured window (where this
// process's GC would compete for the two vCPUs with the server and the generator).
(globalThis as { gc?: () => void }).gc?.();
const alive = (): number => sockets.filter((s) => s.readyState === WebSocket.OPEN).length;

serveParent({ alive }, () => {
  for (const s of sockets) s.terminate();
  process.exit(0);
});
process.send!({ type: 'ready', opened, failed, openMs });
