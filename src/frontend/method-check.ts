/**
 * Which methods a main-port path answers to, for the catch-all: a known path asked with another
 * method gets METHOD_NOT_ALLOWED (405) with an Allow header, not a bare 404. Pure.
 */
const ROUTES: readonly [RegExp, string][] = [
  [/^\/v2\/?$/, 'GET'],
  [/^\/v2\/health\/(live|ready)$/, 'GET'],
  [/^\/v2\/models\/stats$/, 'GET'],
  [/^\/v2\/models\/[^/]+(\/versions\/[^/]+)?$/, 'GET'],
  [/^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/(ready|config|stats)$/, 'GET'],
  [/^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer$/, 'POST'],
  [/^\/v2\/repository\/index$/, 'POST'],
  [/^\/v2\/repository\/models\/[^/]+\/(load|unload)$/, 'POST'],
  [/^\/(metrics|clipper\/metrics)$/, 'GET'],
  [/^\/[^/]+\/(predict|update)\/?$/, 'POST'],
];

/** The methods `path` answers to (e.g. "GET"), or undefined when no route has that path. */
export function allowedMethods(path: string): string | undefined {
  for (const [re, methods] of ROUTES) if (re.test(path)) return methods;
  return undefined;
}
