// Bundles the browser client (src/client/index.ts, with the FlatBuffers runtime and the
// generated code) into one ES module, dist/client/skiff.js, which the server serves at
// /client/skiff.js. Part of `npm run build`; nothing for a user to run.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
await build({
  entryPoints: [`${root}src/client/index.ts`],
  outfile: `${root}dist/client/skiff.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  sourcemap: true,
  minify: true,
  legalComments: 'eof',
  logLevel: 'warning',
});

// npm sets the execute bit of a bin only on some install paths; the build sets it, so
// `npx skiff` works in a checkout whatever npm did.
import { chmodSync } from 'node:fs';
chmodSync(`${root}dist/src/cli.js`, 0o755);
