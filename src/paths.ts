import { fileURLToPath } from 'node:url';

/** Files shipped with the package, resolved from the compiled location (dist/src/). */
export const DEMO_REPOSITORY = fileURLToPath(new URL('../../models/demo', import.meta.url));
export const DEMO_APPS = fileURLToPath(new URL('../../models/demo/apps.json', import.meta.url));
