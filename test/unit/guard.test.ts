/**
 * The admin guard's pure parts (src/http/guard.ts): which Host names a listener answers to, how
 * --allow-origin lists are read, and the browser check the main port applies. Requests are
 * plain header maps: a uWS HttpRequest only exists inside a live handler (the integration tests
 * in test/integration/hardening.test.ts drive the same checks through real listeners).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest } from 'uWebSockets.js';
import { allowedHosts, browserRefusal, guard, hostName, parseOrigins } from '../../src/http/guard.js';

function req(headers: Record<string, string>, query: Record<string, string> = {}): HttpRequest {
  return { getHeader: (k: string) => headers[k] ?? '', getQuery: (k: string) => query[k] } as unknown as HttpRequest;
}

it('a loopback listener answers to the loopback names and to the address it is bound to', () => {
  for (const bound of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) {
    const names = allowedHosts(bound)!;
    for (const n of ['localhost', '127.0.0.1', '[::1]']) assert.ok(names.has(n), `${bound}: ${n}`);
  }
  assert.ok(allowedHosts('127.0.0.2')!.has('127.0.0.2'));
  assert.equal(allowedHosts('127.0.0.2')!.has('127.0.0.3'), false);
  assert.equal(allowedHosts('0.0.0.0'), null, 'every interface: any name (the token stands alone)');
  assert.deepEqual([...allowedHosts('10.1.2.3', ['Skiff.Internal', 'proxy.example:8443'])!].sort(), ['10.1.2.3', 'proxy.example', 'skiff.internal']);
  assert.ok(allowedHosts('fd00::5')!.has('[fd00::5]'), 'an IPv6 address appears in Host in brackets');
});

it('Host values are compared by name, whatever the port', () => {
  assert.equal(hostName('[::1]:8001'), '[::1]');
  assert.equal(hostName('LocalHost:80'), 'localhost');
  assert.equal(hostName('127.0.0.1'), '127.0.0.1');
});

it('--allow-origin takes repeated values and comma lists, in any case, with or without a trailing slash', () => {
  assert.deepEqual([...parseOrigins(['https://A.example, https://b.example/', ' http://c.example:8080 ', ''])],
    ['https://a.example', 'https://b.example', 'http://c.example:8080']);
});

it('the browser check: no Origin passes; a same-origin page passes only from a name of the listener; others need --allow-origin', () => {
  const hosts = allowedHosts('127.0.0.1');
  const origins = parseOrigins(['https://ops.example.com']);
  const code = (h: Record<string, string>) => browserRefusal(req(h), { hosts, origins })?.code ?? null;
  assert.equal(code({ host: '127.0.0.1:8000' }), null);
  assert.equal(code({ host: 'rebind.example:8000' }), null, 'not a browser: a proxy may send any Host');
  assert.equal(code({ host: '127.0.0.1:8000', origin: 'http://127.0.0.1:8000' }), null);
  assert.equal(code({ host: 'localhost:8000', origin: 'http://localhost:8000' }), null);
  assert.equal(code({ host: '127.0.0.1:8000', origin: 'https://ops.example.com' }), null);
  assert.equal(code({ host: '127.0.0.1:8000', origin: 'http://evil.example' }), 'ORIGIN_NOT_ALLOWED');
  assert.equal(code({ host: '127.0.0.1:8000', origin: 'null' }), 'ORIGIN_NOT_ALLOWED');
  // DNS rebinding: the page's origin and the Host agree, but the name is not the listener's.
  assert.equal(code({ host: 'rebind.example:8000', origin: 'http://rebind.example:8000' }), 'HOST_NOT_ALLOWED');
  assert.equal(browserRefusal(req({ host: 'any.example:8000', origin: 'http://any.example:8000' }), { hosts: null, origins }), null);
});

it('the admin guard: Host, Origin, token, then the JSON content type of POSTs without the token header', () => {
  const opts = { token: 'sesame', hosts: allowedHosts('127.0.0.1'), origins: parseOrigins([]) };
  const code = (h: Record<string, string>, q: Record<string, string> = {}, json = true, tokenInQuery = false) =>
    guard(req(h, q), opts, { json, tokenInQuery })?.code ?? null;
  const host = '127.0.0.1:8001';
  assert.equal(code({ host: 'evil.example:8001', authorization: 'Bearer sesame' }), 'HOST_NOT_ALLOWED');
  assert.equal(code({ host, origin: 'http://evil.example', authorization: 'Bearer sesame' }), 'ORIGIN_NOT_ALLOWED');
  assert.equal(code({ host, 'content-type': 'application/json' }), 'UNAUTHORIZED');
  assert.equal(code({ host, 'content-type': 'application/json', authorization: 'Bearer sesamf' }), 'UNAUTHORIZED');
  assert.equal(code({ host, 'content-type': 'application/json', authorization: 'Bearer sesame' }), null);
  assert.equal(code({ host, 'content-type': 'application/json; charset=utf-8', authorization: 'Bearer sesame' }), null);
  assert.equal(code({ host, authorization: 'bearer sesame' }), null, 'the scheme is case-insensitive');
  assert.equal(code({ host, authorization: 'Basic sesame' }), 'UNAUTHORIZED');
  assert.equal(code({ host, authorization: 'Bearer sesame extra' }), 'UNAUTHORIZED');
  assert.equal(code({ host }, { token: 'sesame' }, false, true), null, 'a page or WebSocket handshake may carry it as ?token=');
  assert.equal(code({ host }, { token: 'sesame' }, false, false), 'UNAUTHORIZED', '?token= only where allowed');
  const open = { ...opts, token: undefined };
  assert.equal(guard(req({ host, 'content-type': 'text/plain' }), open, { json: true })?.code, 'UNSUPPORTED_MEDIA_TYPE');
  assert.equal(guard(req({ host }), open, { json: true })?.code, 'UNSUPPORTED_MEDIA_TYPE');
  assert.equal(guard(req({ host, 'content-type': 'Application/JSON' }), open, { json: true }), null);
});
