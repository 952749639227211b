import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { wireMutated, wireRandom, wireStructured } from './wire-campaigns.js';

const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('wire', done)));

test('fuzz decodeFrame: random bytes give BAD_FRAME or sane frames', () => {
  const runs = runsFor('wire.random');
  const t = wireRandom(runs, seed);
  done.push(t);
  // Random bytes almost never form a frame: acceptance is not required.
  checkCampaign(t, runs, { mustAccept: false });
});

test('fuzz decodeFrame: encoded random frames round-trip, refused items match the oracle', () => {
  const runs = runsFor('wire.structured');
  const t = wireStructured(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});

test('fuzz decodeFrame: mutated, truncated and spliced valid frames', () => {
  const runs = runsFor('wire.mutated');
  const t = wireMutated(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});
