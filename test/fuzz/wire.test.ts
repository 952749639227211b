import { test } from 'node:test';
import { checkCampaign, fuzzSeed, runsFor } from './harness.js';
import { wireMutated, wireRandom, wireStructured } from './wire-campaigns.js';

const seed = fuzzSeed();

test('fuzz decodeFrame: random bytes give BAD_FRAME or sane frames', () => {
  const runs = runsFor('wire.random');
  // Random bytes almost never form a frame: acceptance is not required.
  checkCampaign(wireRandom(runs, seed), runs, { mustAccept: false });
});

test('fuzz decodeFrame: encoded random frames round-trip, refused items match the oracle', () => {
  const runs = runsFor('wire.structured');
  checkCampaign(wireStructured(runs, seed), runs);
});

test('fuzz decodeFrame: mutated, truncated and spliced valid frames', () => {
  const runs = runsFor('wire.mutated');
  checkCampaign(wireMutated(runs, seed), runs);
});
