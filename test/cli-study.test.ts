// A study driven only through the CLI, as the README's "real study" section does it: init, the two
// workers as their own processes, start, status, results. What each process prints is what a user sees.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, devServer, endProcess, makeRepo, serve, waitFor, type Running } from './helpers';

const TRAIN = `LR = 0.1  # learning rate
print("step 00001 (100.0%) | loss: 1.000000", flush=True)
print("---")
print(f"val_bpb:          {1 + abs(LR - 0.05):.6f}")
`;

let env: TestWorkflowEnvironment;
const processes: Running[] = [];
before(async () => (env = await devServer()));
after(async () => {
  await Promise.all(processes.map(endProcess));
  await env?.teardown();
});

test('init names the next steps; the workers print what they do, one line per experiment; status and results answer', async () => {
  const server = { TEMPORAL_ADDRESS: env.address };
  const fresh = join(await mkdtemp(join(tmpdir(), 'init-')), 'tiny');
  const init = await cli(['init', '--target', 'tiny', fresh], server);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, new RegExp(`^  npx autoresearch worker\\n  npx autoresearch gpu-worker --repo ${fresh}\\n  npx autoresearch start --repo ${fresh} --tag TAG`, 'm'));

  const repo = await makeRepo({ 'train.py': TRAIN });
  const worker = serve(['worker'], server);
  const gpu = serve(['gpu-worker', '--repo', repo, '--slots', '1'], server);
  processes.push(worker, gpu);
  const started = await cli(['start', '--repo', repo, '--tag', 'shell', '--max-experiments', '3', '--command', 'python3 train.py', '--timeout', '1m', '--proposer', 'sweep'], server);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /^ends: +after 3 experiments/m);

  const done = await waitFor('the study to complete', async () => {
    const status = await cli(['status', 'shell', '--json'], server);
    const view = status.code === 0 && JSON.parse(status.stdout);
    return view && view.state === 'completed' && view;
  }, 180_000, 1_000);
  assert.equal(done.experimentsDone, 3);
  const results = await cli(['results', 'shell'], server);
  assert.equal(results.code, 0, results.stderr);
  assert.equal(results.stdout.trim().split('\n').length, 4, results.stdout);

  assert.match(worker.output(), /^control worker: task queue autoresearch on /m);
  assert.match(gpu.output(), /^gpu worker: 1 slot\(s\)/m);
  for (const id of ['shell-0', 'shell-1', 'shell-2']) {
    assert.match(worker.output(), new RegExp(`\\b${id}\\b`), `the control worker says what became of ${id}:\n${worker.output()}`);
  }
});
