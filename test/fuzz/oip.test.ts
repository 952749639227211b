import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { oipHeaderLength, oipJsonRandom, oipMutated, oipStructured } from './oip-campaigns.js';

const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('oip', done)));

test('fuzz parseInferRequest: random JSON values, text and bytes', () => {
  const runs = runsFor('oip.json-random');
  const t = oipJsonRandom(runs, seed);
  done.push(t);
  // Random JSON is never a valid request: acceptance is not required.
  checkCampaign(t, runs, { mustAccept: false });
});

test('fuzz parseInferRequest: valid requests with junk keys round-trip, polluting keys and typed junk are refused', () => {
  const runs = runsFor('oip.structured');
  const t = oipStructured(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});

test('fuzz parseInferRequest: byte and JSON mutations of valid JSON and binary bodies', () => {
  const runs = runsFor('oip.mutated');
  const t = oipMutated(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});

test('fuzz parseInferRequest: a wrong Inference-Header-Content-Length is always refused', () => {
  const runs = runsFor('oip.header-length');
  const t = oipHeaderLength(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});
