// `status` when a worker is gone: it shows what the server still knows, and says the view is stale
// and since when, instead of a frozen bar or "in flight: none" while a training runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker } from '../gpu-worker/worker';
import { startRun } from '../scripts/runs';
import { fetchStatus, staleLane } from '../scripts/status';
import type { InFlight, RunConfig, StatusView } from '../workflows/types';
import { cli, closeDevServer, devServer, makeRepo, waitFor } from './helpers';

// Long enough to outlive every step below; each step prints progress, which becomes a heartbeat.
const SLOW_TRAIN = `LR = 0.1  # learning rate
import time
TOTAL = 400
for i in range(1, TOTAL + 1):
    print(f"step {i:05d} ({100 * i / TOTAL:.1f}%) | loss: {3 - i / 200:.6f}", flush=True)
    time.sleep(0.25)
print("---")
print("val_bpb: 1.0")
`;

describe('status with a worker gone', () => {
  let env: TestWorkflowEnvironment;
  const workers: { worker: Worker; done: Promise<void> }[] = [];
  before(async () => (env = await devServer()));
  after(async () => {
    for (const { worker } of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    await Promise.allSettled(workers.map((w) => w.done)); // workers hold the connection until they are done
    await closeDevServer(env);
  });

  async function running(make: () => Promise<Worker>): Promise<{ worker: Worker; done: Promise<void> }> {
    const worker = await make();
    const started = { worker, done: worker.run() };
    workers.push(started);
    return started;
  }

  test('shows the training from the server when the control worker is down, and marks the view stale', async () => {
    const repo = await makeRepo({ 'train.py': SLOW_TRAIN });
    const tag = 'stale';
    const config: RunConfig = {
      tag, repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 300_000,
      budgetSeconds: 100, parallel: 1, seed: 0, minImprovement: 0, maxExperiments: 1,
    };
    await startRun(async () => env.client, config);
    const control = await running(() => createControlWorker(env.nativeConnection, 'default'));
    const gpu = await running(() => createGpuWorker(env.nativeConnection, 'default', { checkout: repo, slots: 1, sandbox: false }));
    const training = (view: StatusView) => view.inFlight.find((l) => l.id === `${tag}-0` && l.phase === 'training' && l.heartbeat?.step);
    const live = await waitFor('the baseline training to beat', async () => training(await fetchStatus(env.client, tag)));
    assert.ok(live.heartbeat!.percent! > 0);

    control.worker.shutdown();
    await control.done;
    const server = { TEMPORAL_ADDRESS: env.address };
    const first = JSON.parse((await cli(['status', tag, '--json'], server)).stdout);
    assert.match(first.stale.why, /^no control worker answered within 5s/);
    const lane = first.inFlight.find((l: InFlight) => l.id === `${tag}-0`);
    assert.ok(lane, `the training is still listed: ${JSON.stringify(first.inFlight)}`);
    assert.equal(lane.phase, 'training');
    assert.equal(lane.description, 'baseline');
    const second = JSON.parse((await cli(['status', tag, '--json'], server)).stdout);
    const later = second.inFlight.find((l: InFlight) => l.id === `${tag}-0`);
    assert.ok(later.heartbeat.step > lane.heartbeat.step, 'its progress is live, read from its own workflow');
    assert.equal(second.stale.since, first.stale.since, 'stale since the run\'s last event, which does not move without a worker');
    const text = (await cli(['status', tag], server)).stdout;
    assert.match(text, /^stale: +since \d\d:\d\d:\d\d/m);
    assert.match(text, new RegExp(`^  ${tag}-0 +training +baseline$`, 'm'));

    // The control worker back, the GPU worker gone: the training waits for a retry, its bar is the last attempt's.
    await running(() => createControlWorker(env.nativeConnection, 'default'));
    assert.equal((await fetchStatus(env.client, tag)).stale, undefined, 'a live view is not stale');
    gpu.worker.shutdown();
    await gpu.done;
    const frozen = await waitFor('the view to go stale', async () => {
      const view = await fetchStatus(env.client, tag);
      return view.stale && view;
    });
    assert.match(frozen.stale!.why, new RegExp(`^${tag}-0 is waiting for a GPU worker \\(attempt 2; the progress shown is the last attempt's\\)`));
    assert.ok(training(frozen), 'the last heartbeat is still shown');
  });
});

describe('staleLane', () => {
  const now = Date.parse('2026-11-27T23:00:00Z');
  const lane: InFlight = { id: 'nov27-4', phase: 'training', description: 'x', heartbeat: { percent: 40, elapsed: 96 } };
  const beat = (over: object) => ({ heartbeat: lane.heartbeat, at: now - 2_000, scheduledAt: now - 100_000, started: true, attempt: 1, ...over });

  test('a training that beat a moment ago is live', () => {
    assert.equal(staleLane(lane, beat({}), now), null);
  });

  test('a training silent for longer than three of its beats is stale since its last beat', () => {
    const stale = staleLane(lane, beat({ at: now - 20_000 }), now)!;
    assert.equal(stale.since, new Date(now - 20_000).toISOString());
    assert.equal(stale.why, 'no heartbeat from nov27-4 since then: is its GPU worker still running?');
  });

  test('a proposal is given longer, for it beats less often', () => {
    const proposing: InFlight = { ...lane, id: 'nov27-proposal-3', phase: 'proposing' };
    assert.equal(staleLane(proposing, beat({ at: now - 20_000 }), now), null);
    assert.match(staleLane(proposing, beat({ at: now - 40_000 }), now)!.why, /is its control worker still running/);
  });

  test('a training no worker has picked up is stale once it waited long, or at once on a retry', () => {
    assert.equal(staleLane(lane, beat({ started: false, scheduledAt: now - 5_000 }), now), null);
    assert.match(staleLane(lane, beat({ started: false, scheduledAt: now - 60_000 }), now)!.why, /^nov27-4 is waiting for a GPU worker: is one running\?$/);
    const retry = staleLane(lane, beat({ started: false, attempt: 2, scheduledAt: now - 1_000 }), now)!;
    assert.match(retry.why, /attempt 2; the progress shown is the last attempt's/);
    assert.equal(retry.since, new Date(now - 2_000).toISOString(), 'since its last heartbeat');
  });
});
