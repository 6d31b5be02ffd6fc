// Keeps you can believe: a run measures its own noise (the baseline trained on several seeds), near-ties
// are trained again before they move the branch, changes that do nothing are not kept, clear wins cost nothing extra.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type StatusView } from '../workflows/types';
import { answer, type FakeOpenAI, type Reply } from './fake-openai';
import { withServers, makeRepo, runWorkers, studyConfig } from './helpers';

const SIGMA = 0.001;
// A does nothing; B is worth 6σ; C is worth 20σ. Every training adds seeded noise of σ.
const TRAIN = `A = 0  # does nothing
B = 0  # 6 sigma better when 1
C = 0  # 20 sigma better when 1
import os, random
noise = random.Random(int(os.environ["AUTORESEARCH_SEED"])).gauss(0, ${SIGMA})
print("---")
print(f"val_bpb:          {1.0 - 0.006 * B - 0.020 * C + noise:.6f}")
`;
const EXPERIMENTS = 40;

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
withServers((e, f) => ((env = e), (fake = f)));

const set = (name: string, from: number, to: number): Reply => ({
  content: answer(`${name} ${from} -> ${to}`, [
    { path: 'train.py', search: `${name} = ${from} `, replace: `${name} = ${to} ` },
  ]),
});

test(`in ${EXPERIMENTS} experiments no change that does nothing is kept, the real knobs are, and σ is measured`, async () => {
  // Mostly changes of A (nothing), with B's and C's changes among them, as a night's proposals come.
  const nulls = Array.from({ length: EXPERIMENTS - 3 }, (_, i) => set('A', 0, i + 1));
  fake.script.push(...nulls.slice(0, 9), set('B', 0, 1), ...nulls.slice(9, 20), set('C', 0, 1), ...nulls.slice(20));
  const repo = await makeRepo({ 'train.py': TRAIN });
  const config = studyConfig(repo, 'noise', {
    proposer: 'llm',
    model: 'm',
    timeoutMs: 20_000,
    ahead: 0,
    seed: 7,
    baselineRuns: 5,
    maxExperiments: EXPERIMENTS,
  });
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor('noise')).result() as Promise<StatusView>;
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished);
  const view = await finished;
  const records = await readRecords(repo, 'noise');
  const by = (prefix: string) => records.filter((r) => r.description.startsWith(prefix));

  const baseline = records[0];
  assert.equal(baseline.runs!.length, 5, 'the baseline trained on five seeds');
  assert.equal(new Set(baseline.runs!.map((r) => r.seed)).size, 5);
  const mean = baseline.runs!.reduce((sum, r) => sum + r.valBpb!, 0) / 5;
  assert.ok(Math.abs(baseline.valBpb! - mean) < 1e-12, 'its score is the mean of its runs');

  const nullRows = by('A ');
  assert.ok(nullRows.length >= 30, `${nullRows.length} changes of A were judged`);
  assert.deepEqual(nullRows.filter((r) => r.status === 'keep').map((r) => `${r.id}: ${r.reason}`), [], 'a change that does nothing is never kept');
  assert.ok(nullRows.some((r) => r.runs!.length === 1), 'a clear loss cost one run');
  const [b] = by('B ');
  assert.equal(b.status, 'keep', b.reason);
  const [c] = by('C ');
  assert.equal(c.status, 'keep', c.reason);
  assert.equal(c.runs!.length, 1, `20σ is a clear win: ${c.reason}`);

  assert.ok(view.noise, 'status shows σ');
  assert.ok(
    view.noise!.sigma > SIGMA / 2 && view.noise!.sigma < SIGMA * 2,
    `σ measured ${view.noise!.sigma}, true ${SIGMA}`,
  );
  assert.equal(records.at(-1)!.sigma, view.noise!.sigma, 'results.jsonl carries σ');
  const memo = (await env.client.workflow.getHandle(workflowIdFor('noise')).describe()).memo;
  assert.equal(memo?.sigma, view.noise!.sigma, 'the Web UI memo carries σ');
});
