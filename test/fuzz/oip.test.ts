import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { oipJsonRandom, oipStructured } from './oip-campaigns.js';

// The OIP campaigns are split over two files (oip-mutated.test.ts) to keep each under ~20 s.
const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('oip: random + structured', done)));

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
