import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { oipHeaderLength, oipMutated } from './oip-campaigns.js';

const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('oip: mutated + header length', done)));

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
