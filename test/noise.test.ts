// Keeps you can believe: a run measures its own noise (the baseline trained on several seeds), near-ties
// are confirmed by another run before they move the branch, and clear wins cost nothing extra.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type StatusView } from '../workflows/types';
import { answer, type FakeOpenAI, type Reply } from './fake-openai';
import { withServers, makeRepo, runWorkers, studyConfig } from './helpers';

const SIGMA = 0.001;
// A does nothing; B is worth 5σ; C is worth 20σ. Every training adds seeded noise of σ.
const TRAIN = `A = 0  # does nothing
B = 0  # 5 sigma better when 1
C = 0  # 20 sigma better when 1
import os, random
noise = random.Random(int(os.environ["AUTORESEARCH_SEED"])).gauss(0, ${SIGMA})
print("---")
print(f"val_bpb:          {1.0 - 0.005 * B - 0.020 * C + noise:.6f}")
`;

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
withServers((e, f) => ((env = e), (fake = f)));

const set = (name: string, from: number, to: number): Reply => ({
  content: answer(`${name} ${from} -> ${to}`, [
    { path: 'train.py', search: `${name} = ${from} `, replace: `${name} = ${to} ` },
  ]),
});

test('no change inside the noise is kept, a 5σ gain is kept after confirmation, a 20σ gain at once, and σ is measured', async () => {
  const nulls = [1, 2, 3, 4, 5, 6, 7, 8].map((v) => set('A', 0, v));
  fake.script.push(...nulls, set('B', 0, 1), set('C', 0, 1));
  const repo = await makeRepo({ 'train.py': TRAIN });
  const config = studyConfig(repo, 'noise', {
    proposer: 'llm',
    model: 'm',
    timeoutMs: 20_000,
    ahead: 0,
    seed: 7,
    baselineRuns: 4,
    maxExperiments: 11,
  });
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor('noise')).result() as Promise<StatusView>;
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished);
  const view = await finished;
  const records = await readRecords(repo, 'noise');
  const by = (prefix: string) => records.filter((r) => r.description.startsWith(prefix));

  const baseline = records[0];
  assert.equal(baseline.runs!.length, 4, 'the baseline trained on four seeds');
  assert.equal(new Set(baseline.runs!.map((r) => r.seed)).size, 4);
  const mean = baseline.runs!.reduce((sum, r) => sum + r.valBpb!, 0) / 4;
  assert.ok(Math.abs(baseline.valBpb! - mean) < 1e-12, 'its score is the mean of its runs');

  assert.deepEqual(
    by('A ')
      .map((r) => r.status)
      .filter((s) => s === 'keep'),
    [],
    'a change that does nothing is never kept',
  );
  assert.ok(
    by('A ').some((r) => r.runs!.length === 2),
    'a near-tie was confirmed by a second run',
  );
  assert.ok(
    by('A ').some((r) => r.runs!.length === 1),
    'a clear loss cost one run',
  );
  const [b] = by('B ');
  assert.equal(b.status, 'keep', b.reason);
  assert.equal(b.runs!.length, 2, `5σ needed confirmation: ${b.reason}`);
  assert.equal(b.confirmed, true);
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
