// The morning's questions, on a night whose truth is known: raising X is worth 0.10, raising Y 0.05,
// raising X further 0.02, and every training adds seeded noise of σ = 0.002.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRecords, resultsDir } from '../activities/results';
import { startRun } from '../scripts/runs';
import { ablateWorkflow } from '../workflows';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import {
  CONTROL_QUEUE,
  morningWorkflowId,
  workflowIdFor,
  type Ablation,
  type Interval,
  type StatusView,
  type Verdict,
} from '../workflows/types';
import { answer, type FakeOpenAI, type Reply } from './fake-openai';
import { withServers, makeRepo, runWorkers, studyConfig } from './helpers';

const TRAIN = `X = 4  # worth 0.10 at 8, 0.12 at 16
Y = 4  # worth 0.05 at 8
import os, random
noise = random.Random(int(os.environ["AUTORESEARCH_SEED"])).gauss(0, 0.002)
print("---")
print(f"val_bpb:          {1.0 - {4: 0, 8: 0.10, 16: 0.12}[X] - 0.05 * (Y == 8) + noise:.6f}")
`;

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
withServers((e, f) => ((env = e), (fake = f)));

const edit = (description: string, search: string, replace: string): Reply => ({
  content: answer(description, [{ path: 'train.py', search, replace }]),
});
const contains = (i: Interval, x: number) => i.low <= x && x <= i.high;

test("verify states the night's gain with an interval, and ablate what each kept change was worth", async () => {
  fake.script.push(
    edit('raise X', 'X = 4 ', 'X = 8 '),
    edit('raise Y', 'Y = 4 ', 'Y = 8 '),
    edit('raise X more', 'X = 8 ', 'X = 16 '),
  );
  const repo = await makeRepo({ 'train.py': TRAIN });
  const config = studyConfig(repo, 'morning', {
    proposer: 'llm',
    model: 'm',
    timeoutMs: 20_000,
    ahead: 0,
    seed: 11,
    baselineRuns: 2,
    maxExperiments: 4,
    verifyRuns: 3,
  });
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor('morning')).result() as Promise<StatusView>;
  const ablated = finished.then(() =>
    env.client.workflow.execute(ablateWorkflow, {
      workflowId: morningWorkflowId('morning', 'ablate'),
      taskQueue: CONTROL_QUEUE,
      args: [{ config, runs: 3 }],
      typedSearchAttributes: [{ key: RESEARCH_TAG, value: 'morning.ablate' }],
    }),
  );
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, ablated);
  const view = await finished;
  const records = await readRecords(repo, 'morning');
  assert.deepEqual(
    records.map((r) => r.status),
    ['keep', 'keep', 'keep', 'keep'],
    records.map((r) => r.reason).join('; '),
  );

  // The verdict, at the end of the run: in the final status and beside the results.
  const verdict: Verdict = JSON.parse(await readFile(join(resultsDir(repo, 'morning'), 'verdict.json'), 'utf8'));
  assert.equal(view.verdict, verdict.line);
  assert.equal(verdict.baseline.commit, records[0].commit);
  assert.equal(verdict.best.commit, records.at(-1)!.commit);
  assert.equal(verdict.best.n, 3);
  assert.ok(contains(verdict.gain, -0.17), `the true gain −0.17 lies in ${verdict.line}`);
  assert.ok(verdict.gain.high < 0, 'and the interval excludes no gain at all');
  assert.match(
    verdict.line,
    /^baseline 1\.0\d{3} ± 0\.\d{4} → best 0\.83\d{2} ± 0\.\d{4} \(n=3\): −0\.1\d{3} \[−0\.\d{4}, −0\.\d{4}\]$/,
  );

  // Ablation: one row per kept change in keep order; the first no longer comes out cleanly (X was raised again).
  const ablation: Ablation = await ablated;
  assert.deepEqual(JSON.parse(await readFile(join(resultsDir(repo, 'morning'), 'ablation.json'), 'utf8')), ablation);
  const [x, y, xMore] = [...ablation.changes].sort((a, b) => a.change.localeCompare(b.change));
  assert.deepEqual(
    [x, y, xMore].map((c) => c.change),
    records.slice(1).map((r) => r.id),
  );
  assert.match(x.problem!, /no longer reverts cleanly/);
  assert.equal(x.contribution, null);
  assert.ok(contains(y.contribution!, 0.05), `raise Y is worth 0.05: ${JSON.stringify(y.contribution)}`);
  assert.ok(contains(xMore.contribution!, 0.02), `raise X more is worth 0.02: ${JSON.stringify(xMore.contribution)}`);
  assert.ok(y.contribution!.low > 0 && xMore.contribution!.low > 0, 'both clearly helped');
  const described = await env.client.workflow.getHandle(morningWorkflowId('morning', 'ablate')).describe();
  assert.equal(described.typedSearchAttributes.get(RESEARCH_TAG), 'morning.ablate', 'a study of its own in the Web UI');
});
