// The tpe, cmaes and mixed proposers through real workflows, real git and real trainings, on the two-knob bowl
// of search-fixture.ts: each trial an ordinary experiment, TPE closer to the optimum than the sweep after the
// same number of trials (median over seeds), the sampler stateless, and mixed's keeps found by both its proposers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRecords, resultsDir } from '../activities/results';
import { askSampler, searchSpace } from '../activities/sampler';
import { findHyperparameters, knobValues } from '../activities/sweep';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type ExperimentRecord, type ProposerKind, type StatusView } from '../workflows/types';
import { writeReport } from '../scripts/report';
import { answer, fakeOpenAI, type FakeOpenAI } from './fake-openai';
import { closeDevServer, devServer, gitIn, makeRepo, runWorkers, studyConfig } from './helpers';
import { OPTIMUM, SEARCH_TRAIN, trueScore } from './search-fixture';

const TRIALS = 24; // the baseline among them
const SEEDS = [1, 2, 3];

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
before(async () => {
  env = await devServer();
  fake = await fakeOpenAI();
});
after(async () => {
  await fake.close();
  await closeDevServer(env);
});

const knobsAt = (repo: string, commit: string) =>
  knobValues(gitIn(repo, 'show', `${commit}:train.py`));

async function night(proposer: ProposerKind, seed: number, extra = {}): Promise<{ repo: string; tag: string; records: ExperimentRecord[] }> {
  const repo = await makeRepo({ 'train.py': SEARCH_TRAIN });
  const tag = `${proposer}-${seed}`;
  const config = studyConfig(repo, tag, { proposer, seed, maxExperiments: TRIALS, falseKeep: 0, verifyRuns: 0, ahead: 0, rerunGraceMs: 60_000, ...extra });
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor(tag)).result() as Promise<StatusView>;
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, finished);
  const view = await finished;
  assert.equal(view.state, 'completed', view.reason);
  return { repo, tag, records: await readRecords(repo, tag) };
}

/** The true score of the best configuration the night trained: how close its search got. */
const gap = ({ repo, records }: { repo: string; records: ExperimentRecord[] }) =>
  Math.min(...records.filter((r) => r.commit).map((r) => trueScore(knobsAt(repo, r.commit!)))) - OPTIMUM;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test(`after ${TRIALS} trials TPE is closer to the optimum than the sweep (median over ${SEEDS.length} seeds), each trial an experiment`, async () => {
  const gaps: Record<string, number[]> = { sweep: [], tpe: [] };
  for (const seed of SEEDS) {
    for (const proposer of ['sweep', 'tpe'] as const) {
      const n = await night(proposer, seed);
      if (proposer === 'tpe') {
        assert.equal(n.records.length, TRIALS);
        for (const r of n.records.slice(1)) {
          assert.match(r.description, /^tpe: (LR|WIDTH) [\d.e-]+ -> [\d.e-]+/, r.description);
          assert.match(gitIn(n.repo, 'log', '-1', '--format=%B', r.commit!), new RegExp(`Experiment-Id: ${r.id}`));
          assert.ok(['keep', 'discard'].includes(r.status), `${r.id} ${r.status}: ${r.reason}`);
        }
      }
      else assert.ok(n.records.length <= TRIALS, 'the sweep may run out of steps from its best first');
      gaps[proposer].push(gap(n));
    }
  }
  assert.ok(median(gaps.tpe) < median(gaps.sweep), `median gap tpe ${median(gaps.tpe)} vs sweep ${median(gaps.sweep)} (${JSON.stringify(gaps)})`);
});

test('mixed: the llm changes the code, the sampler tunes the knobs, and the report says which found each keep', async () => {
  let tries = 0;
  fake.script.push({ content: answer('a better architecture', [{ path: 'train.py', search: 'print("---")', replace: 'score -= 0.05\nprint("---")' }]) });
  fake.fallback = () => ({ content: answer(`a worse idea ${++tries}`, [{ path: 'train.py', search: 'print("---")', replace: `score += 0.01  # idea ${tries}\nprint("---")` }]) });
  const n = await night('mixed', 5, { model: 'm', maxExperiments: 14 });
  const kept = n.records.filter((r) => r.status === 'keep' && r.n > 0);
  assert.ok(kept.some((r) => r.proposer === 'llm' && r.description === 'a better architecture'), JSON.stringify(kept.map((r) => r.description)));
  assert.ok(kept.some((r) => r.proposer === 'tpe' && r.description.startsWith('tpe: ')), JSON.stringify(kept.map((r) => r.description)));
  for (const r of n.records.slice(1)) assert.equal(r.proposer, r.description.startsWith('tpe: ') ? 'tpe' : 'llm', r.description);
  const tpe = n.records.filter((r) => r.proposer === 'tpe');
  assert.ok(tpe.length >= 3, 'every 4th proposal, and after three lost code changes');
  // The sampler tunes the best's code: its trials after the llm's keep carry the llm's line.
  const after = tpe.filter((r) => r.n > kept.find((k) => k.proposer === 'llm')!.n);
  assert.ok(after.length > 0 && after.every((r) => gitIn(n.repo, 'show', `${r.commit}:train.py`).includes('score -= 0.05')));
  const summary = await readFile((await writeReport(n.repo, n.tag, () => undefined)).markdown, 'utf8');
  const counts = (p: string) => kept.filter((r) => r.proposer === p).length;
  assert.match(summary, new RegExp(`^- keeps by proposer: (llm ${counts('llm')}, tpe ${counts('tpe')}|tpe ${counts('tpe')}, llm ${counts('llm')})$`, 'm'));
  assert.match(summary, /\| a better architecture \| llm \|$/m);
  assert.match(summary, /\| tpe: [^|]+ \| tpe \|$/m);
});

test('the sampler is told every result and asks the same again for the same history: a restart changes nothing', async () => {
  const n = await night('cmaes', 7, { maxExperiments: 8 });
  assert.equal(n.records.length, 8);
  for (const r of n.records.slice(1)) assert.match(r.description, /^cmaes: /);
  const space = searchSpace(findHyperparameters(SEARCH_TRAIN), undefined);
  const told = n.records.map((r) => ({ params: knobsAt(n.repo, r.commit!), value: r.valBpb }));
  const request = { sampler: 'tpe', seed: 99, space, trials: told };
  assert.deepEqual(await askSampler(request), await askSampler(request), 'stateless: the same question, the same answer');
  const unknown = await askSampler({ ...request, trials: told.slice(0, 1) });
  assert.notDeepEqual(unknown, await askSampler(request), 'and the results it is told change what it asks');
  const jsonl = await readFile(join(resultsDir(n.repo, n.tag), 'results.jsonl'), 'utf8');
  assert.equal(jsonl.trim().split('\n').length, 8, 'its whole history is results.jsonl and the commits');
});

test('CMA-ES learns from the trials it is told: two generations in which a lower LR scored better move its asks there', async () => {
  const space = { LR: { low: 0.003, high: 0.3, log: true, int: false }, WIDTH: { low: 1, high: 16, log: true, int: true } };
  // LR from 0.003 to 0.3 in even log steps, told in a shuffled order: the lower, the better; WIDTH does nothing.
  const trials = Array.from({ length: 12 }, (_, i) => (i * 5) % 12).map((j) => ({ params: { LR: 0.003 * 100 ** (j / 11), WIDTH: 4 }, value: 1 + j / 11 }));
  for (let seed = 1; seed <= 5; seed++) {
    const asked = await askSampler({ sampler: 'cmaes', seed, space, trials });
    assert.ok(asked.LR < 0.03, `seed ${seed}: asked LR ${asked.LR}, above the range's middle (0.03), where it started`);
  }
});

test('autoresearch.json "search" sets the ranges, and a knob it names that is not there is one clear line', () => {
  const params = findHyperparameters(SEARCH_TRAIN);
  assert.deepEqual(searchSpace(params, undefined), {
    LR: { low: 0.003, high: 0.3, log: true, int: false },
    WIDTH: { low: 1, high: 16, log: true, int: true },
  });
  assert.deepEqual(searchSpace(params, { LR: { low: 1e-4, high: 0.1, log: true } }), { LR: { low: 1e-4, high: 0.1, log: true, int: false } });
  assert.throws(() => searchSpace(params, { DEPTH: { low: 1, high: 4 } }), /"search" names DEPTH, which is not an UPPER_CASE = number knob/);
  assert.throws(() => searchSpace(params, { LR: { low: 0.1, high: 0.01 } }), /expected \{"low": number, "high": number\} with low < high/);
  const fraction = searchSpace(findHyperparameters('BETA = 0.95\nDROP = 0.1\n'), undefined);
  assert.ok(fraction.BETA.low > 0 && fraction.BETA.high < 1 && fraction.DROP.high < 1, JSON.stringify(fraction));
});
