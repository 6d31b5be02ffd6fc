// Two studies on two research repos at once, each with its own GPU worker: every training reaches the
// worker that holds its repo (a task queue per repo), so neither crashes as "harness mismatch".
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker, gpuQueueOf } from '../gpu-worker/worker';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { closeDevServer, devServer, makeRepo } from './helpers';

// Each repo's harness names the repo, and its training prints which harness it ran against.
const repoFiles = (name: string) => ({
  'prepare.py': `REPO = "${name}"  # the fixed harness\n`,
  'train.py': `LR = 0.1  # lr\nimport time\nfrom prepare import REPO\ntime.sleep(0.3)\nprint("---")\nprint(f"val_bpb: {1 + LR:.6f}")\nprint(f"repo_{REPO}: 1")\n`,
});

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

test('two studies on two repos side by side: each training runs on the worker that holds its repo', async () => {
  const repos = { left: await makeRepo(repoFiles('left')), right: await makeRepo(repoFiles('right')) };
  assert.notEqual(await gpuQueueOf(repos.left), await gpuQueueOf(repos.right), 'a task queue per repo');
  const config = (tag: 'left' | 'right'): RunConfig => ({
    tag,
    repo: repos[tag],
    proposer: 'sweep',
    editable: ['train.py'],
    command: 'python3 train.py',
    timeoutMs: 20_000,
    budgetSeconds: 1,
    parallel: 2,
    maxExperiments: 6,
    seed: 1,
    minImprovement: 0,
  });
  await startRun(async () => env.client, config('left'));
  await startRun(async () => env.client, config('right'));
  const finished = Promise.all(
    ['left', 'right'].map((tag) => env.client.workflow.getHandle(workflowIdFor(tag)).result() as Promise<StatusView>),
  );
  const workers = [
    await createControlWorker(env.nativeConnection, 'default'),
    await createGpuWorker(env.nativeConnection, 'default', { checkout: repos.left, slots: 2 }),
    await createGpuWorker(env.nativeConnection, 'default', { checkout: repos.right, slots: 2 }),
  ];
  await Promise.all(workers.map((w) => w.runUntil(finished)));
  for (const view of await finished) assert.equal(view.state, 'completed');
  for (const tag of ['left', 'right'] as const) {
    const records = await readRecords(repos[tag], tag);
    assert.equal(records.length, 6);
    for (const r of records) {
      assert.notEqual(r.status, 'crash', `${r.id}: ${r.reason}`);
      assert.equal(r.metrics[`repo_${tag}`], 1, `${r.id} trained against its own repo's harness`);
    }
  }
});
