import { after, test } from 'node:test';
import { checkCampaign, fuzzSeed, parserSummary, runsFor, type Tally } from './harness.js';
import { adminMutated, adminStructured } from './admin-campaigns.js';

const seed = fuzzSeed();
const done: Tally[] = [];
after(() => console.log(parserSummary('admin', done)));

test('fuzz admin API bodies: every call with fields valid or typed junk, plus junk keys', async () => {
  const runs = runsFor('admin.structured');
  const t = await adminStructured(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});

test('fuzz admin API bodies: byte and JSON mutations of valid bodies for every call', async () => {
  const runs = runsFor('admin.mutated');
  const t = await adminMutated(runs, seed);
  done.push(t);
  checkCampaign(t, runs);
});
