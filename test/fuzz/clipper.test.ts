import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { clipperMutated, clipperStrings, clipperStructured } from './clipper-campaigns.js';

const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('clipper', done)));

test('fuzz Clipper predict/update bodies: valid bodies parse exactly, junk fields are refused with codes', () => {
  const runs = runsFor('clipper.structured');
  const t = clipperStructured(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
  const stringRuns = Math.max(200, Math.round(runs / 10));
  const s = clipperStrings(stringRuns, seed);
  checkCampaign(s, stringRuns);
});

test('fuzz Clipper predict/update bodies: byte and JSON mutations of valid bodies', () => {
  const runs = runsFor('clipper.mutated');
  const t = clipperMutated(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});
