import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

/**
 * The one place uWebSockets.js is loaded. Two builds from the npm registry, under two alias
 * names, cover the Node lines people run:
 *
 *   - `uWebSockets.js` = @trufflesuite/uws-js-unofficial 20.30: Node 16/18/20 (module ABI 93,
 *     108, 115), glibc >= 2.27;
 *   - `uws-next` = @btc-vision/uwebsockets.js 20.57: Node 20/22/24/25 (ABI 115, 127, 137,
 *     141), glibc >= 2.38 (Debian 13, Ubuntu 24.04 and later).
 *
 * The native binary is required directly, never the package's entry point: the trufflesuite
 * entry falls back to a pure-JS imitation without a word when its binary does not load, and
 * Skiff must not run on that. When no build loads, `uws` is a stand-in whose every use throws
 * the one message `assertNativeUws()` gives at start-up: the Node version, the glibc found,
 * and what works.
 *
 * `SKIFF_UWS=trufflesuite|btc-vision` forces one build (to test the other on Node 20).
 */

export type Uws = typeof UWS;

interface Build {
  readonly id: 'trufflesuite' | 'btc-vision';
  /** Package name (alias) in node_modules. */
  readonly pkg: string;
  /** npm name and version, for messages. */
  readonly npm: string;
  readonly abis: readonly string[];
  readonly glibc: string;
  /** Directory in the package that holds `uws_<platform>_<arch>_<abi>.node`. */
  readonly binDir: string;
}

const BUILDS: readonly Build[] = [
  { id: 'trufflesuite', pkg: 'uWebSockets.js', npm: '@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0', abis: ['93', '108', '115'], glibc: '2.27', binDir: 'binaries' },
  { id: 'btc-vision', pkg: 'uws-next', npm: '@btc-vision/uwebsockets.js@20.57.0', abis: ['115', '127', '137', '141'], glibc: '2.38', binDir: '.' },
];

export interface UwsChoice {
  /** The build that loaded, or undefined when none did. */
  readonly build?: Build['id'];
  readonly npm?: string;
  readonly binary?: string;
  /** Why each candidate did not load, in the order tried. */
  readonly failures: readonly string[];
  /** The start-up error message when nothing loaded. */
  readonly error?: string;
}

/** The C library's version as the running process reports it (undefined on musl or non-Linux). */
export function glibcVersion(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    return header?.glibcVersionRuntime;
  } catch {
    return undefined;
  }
}

function versionAtLeast(have: string, need: string): boolean {
  const a = have.split('.').map(Number);
  const b = need.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0, y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/** The candidate builds for this process, most preferred first. */
function candidates(abi: string): Build[] {
  const forced = process.env.SKIFF_UWS;
  if (forced) return BUILDS.filter((b) => b.id === forced);
  return BUILDS.filter((b) => b.abis.includes(abi));
}

function load(): { uws?: Uws; choice: UwsChoice } {
  const require = createRequire(import.meta.url);
  const abi = process.versions.modules;
  const failures: string[] = [];
  const glibc = glibcVersion();
  for (const b of candidates(abi)) {
    const root = (require.resolve.paths(b.pkg) ?? []).map((d) => join(d, b.pkg)).find((d) => existsSync(join(d, 'package.json')));
    if (!root) {
      failures.push(`${b.npm}: not installed (npm ci installs it as '${b.pkg}')`);
      continue;
    }
    const binary = join(root, b.binDir, `uws_${process.platform}_${process.arch}_${abi}.node`);
    try {
      const uws = require(binary) as Uws;
      if (!/\[native code\]/.test(String(uws.App))) throw new Error('not a native build');
      return { uws, choice: { build: b.id, npm: b.npm, binary, failures } };
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0]!;
      failures.push(`${b.npm}: ${/Cannot find module/.test(msg) ? `no binary for ${process.platform}-${process.arch} module ABI ${abi}` : msg}`);
    }
  }
  const works = glibc && !versionAtLeast(glibc, '2.38')
    ? `On this system (glibc ${glibc}) use Node 20; Node 22, 24 and 25 need glibc >= 2.38 (Debian 13, Ubuntu 24.04 or later).`
    : 'Supported: Node 20 with glibc >= 2.27; Node 20, 22, 24 and 25 with glibc >= 2.38 (Debian 13, Ubuntu 24.04 or later), on linux-x64/arm64, macOS or Windows x64.';
  const error =
    `Skiff cannot start: no native uWebSockets.js build loads on Node ${process.version} (module ABI ${abi}, ` +
    `${process.platform}-${process.arch}, glibc ${glibc ?? 'not found'}). ${works}` +
    (failures.length ? ` Tried: ${failures.join('; ')}.` : ' No build on the npm registry covers this Node version.') +
    ' Skiff never runs on the slow pure-JS fallback.';
  return { choice: { failures, error } };
}

const loaded = load();

/** Which build loaded (or why none did): for `skiff --version`, logs and tests. */
export const uwsChoice: UwsChoice = loaded.choice;

/** The start-up check: throws the one clear message when no native build loaded. */
export function assertNativeUws(): void {
  if (!loaded.uws) throw new Error(loaded.choice.error);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('Skiff requires a little-endian machine');
}

const unavailable = new Proxy({}, {
  get() {
    throw new Error(loaded.choice.error);
  },
}) as Uws;

/** uWebSockets.js, native; every module that needs it at run time imports it from here. */
const uws: Uws = loaded.uws ?? unavailable;
export default uws;
