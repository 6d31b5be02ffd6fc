// Steering a run from the command line: pause lets in-flight work finish and starts nothing new,
// resume goes on, stop ends gracefully (finishing or cancelling), --until stops starting in time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRecords, resultsDir } from '../activities/results';
import { fetchStatus } from '../scripts/status';
import { startRun } from '../scripts/runs';
import { experimentWorkflowId, workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { cli, closeDevServer, devServer, makeRepo, runWorkers, waitFor } from './helpers';

// Each candidate trains for SLEEP seconds and scores by how far LR is from 0.05.
const TRAIN = `LR = 0.1  # learning rate
SLEEP = 1.5  # seconds of "training"
import math, time
print("step 00001 (50.0%) | loss: 1.000000", flush=True)
time.sleep(SLEEP)
print("---")
print(f"val_bpb:          {1 + abs(math.log(LR / 0.05)):.6f}")
`;

let env: TestWorkflowEnvironment;
let stopWorkers: () => void;
let running: Promise<unknown>;
before(async () => (env = await devServer()));
after(async () => {
  stopWorkers?.();
  await running;
  await closeDevServer(env);
});

async function study(tag: string, extra: Partial<RunConfig>, train = TRAIN) {
  const repo = await makeRepo({ 'train.py': train });
  stopWorkers?.();
  await running;
  // The workers outlive each run: a test steers its run and reads it after it ends.
  running = runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, new Promise<void>((done) => (stopWorkers = done)));
  const config: RunConfig = {
    tag, repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 30_000,
    budgetSeconds: 1, parallel: 1, seed: 0, minImprovement: 0, ...extra,
  };
  await startRun(async () => env.client, config);
  const handle = env.client.workflow.getHandle(workflowIdFor(tag));
  return { repo, handle, status: () => fetchStatus(env.client, tag), result: () => handle.result() as Promise<StatusView> };
}

const server = () => ({ TEMPORAL_ADDRESS: env.address });
const rows = async (repo: string, tag: string) => (await readFile(join(resultsDir(repo, tag), 'results.tsv'), 'utf8')).trim().split('\n').slice(1);

test('pause finishes the experiment in flight and starts nothing; resume goes on; stop ends the run with every experiment recorded', async () => {
  const run = await study('steer', {});
  await waitFor('experiment 1 training', async () => (await run.status()).inFlight.some((l) => l.id === 'steer-1' && l.phase === 'training'));
  const paused = await cli(['pause', 'steer'], server());
  assert.equal(paused.code, 0, paused.stderr);
  const training = (view: StatusView) => view.inFlight.filter((l) => l.phase === 'training' || l.phase === 'deciding');
  const idle = await waitFor('the pause to settle', async () => {
    const view = await run.status();
    return view.state === 'paused' && training(view).length === 0 && view;
  });
  assert.ok(idle.experimentsDone >= 2);
  await new Promise((r) => setTimeout(r, 3_000)); // two experiments' time: nothing may start
  const still = await run.status();
  assert.equal(still.experimentsDone, idle.experimentsDone);
  assert.deepEqual(training(still), []);
  assert.ok(still.inFlight.every((l) => l.phase === 'queued'), 'a proposal prepared before the pause waits in the queue');

  assert.equal((await cli(['resume', 'steer'], server())).code, 0);
  await waitFor('progress after resume', async () => (await run.status()).experimentsDone > idle.experimentsDone);

  await waitFor('an experiment training', async () => (await run.status()).inFlight.some((l) => l.phase === 'training'));
  const stopped = await cli(['stop', 'steer'], server());
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /stopping steer: finishing the experiments in flight/);
  const stopping = await run.status();
  assert.equal(stopping.state, 'stopping', 'the experiment in flight is finishing');
  assert.equal(training(stopping).length, 1);
  assert.equal(stopping.reason, 'stopped by request');
  const final = await run.result();
  assert.equal(final.state, 'stopped');
  assert.equal(final.reason, 'stopped by request');
  assert.equal((await rows(run.repo, 'steer')).length, final.experimentsDone);
  const status = await cli(['status', 'steer', '--json'], server());
  assert.equal(JSON.parse(status.stdout).state, 'stopped');
  const again = await cli(['pause', 'steer'], server());
  assert.equal(again.code, 2);
  assert.match(again.stderr, /run steer is not running \(it is completed\)/);
});

test('stop --cancel kills the training in flight and records it as cancelled', async () => {
  const hangAfterBaseline = TRAIN.replace('import math, time', 'import math, os, time').replace(
    'time.sleep(SLEEP)',
    'time.sleep(SLEEP if os.environ["AUTORESEARCH_EXPERIMENT_ID"].endswith("-0") else 600)',
  );
  const run = await study('cancel', {}, hangAfterBaseline);
  await waitFor('experiment 1 training', async () => (await run.status()).inFlight.some((l) => l.id === 'cancel-1' && l.heartbeat?.step === 1));
  const started = Date.now();
  assert.equal((await cli(['stop', 'cancel', '--cancel'], server())).code, 0);
  const final = await run.result();
  assert.ok(Date.now() - started < 20_000, 'the hung training did not run to its timeout');
  assert.equal(final.state, 'stopped');
  const last = (await rows(run.repo, 'cancel')).at(-1)!.split('\t');
  assert.deepEqual(last.slice(1, 4), ['0.000000', '0.0', 'crash'], 'a cancelled experiment is a crash row, as the README says');
  const records = await readRecords(run.repo, 'cancel');
  assert.equal(records.at(-1)!.reason, 'cancelled');
});

test('--until starts no experiment that could not finish before the deadline, then completes', async () => {
  const timeoutMs = 4_000;
  const untilMs = Date.now() + 12_000;
  const run = await study('until', { timeoutMs, untilMs });
  const final = await run.result();
  assert.equal(final.state, 'completed');
  assert.match(final.reason!, /^deadline .* reached$/);
  assert.ok(Date.now() <= untilMs + 2_000, `finished ${Date.now() - untilMs} ms after the deadline`);
  const records = await readRecords(run.repo, 'until');
  assert.ok(records.length >= 2);
  for (const r of records) assert.ok(Date.parse(r.startedAt) + timeoutMs <= untilMs + 1_000, `${r.id} started ${untilMs - Date.parse(r.startedAt)} ms before the deadline`);
  // Past the cutoff the run waits for its experiments, not on a timer it re-arms every millisecond: one timer for
  // the cutoff, and at most one per experiment for a free slot's grace before it reruns the best.
  const { events } = await run.handle.fetchHistory();
  const timers = events!.filter((e) => e.timerStartedEventAttributes).length;
  assert.ok(timers <= records.length + 1, `${timers} timers started for ${records.length} experiments`);
});

test('cancelling the run from the Web UI kills the training in flight, records its row and closes the run', async () => {
  const hangAfterBaseline = TRAIN.replace('import math, time', 'import math, os, time').replace(
    'time.sleep(SLEEP)',
    'time.sleep(SLEEP if os.environ["AUTORESEARCH_EXPERIMENT_ID"].endswith("-0") else 600)',
  );
  const run = await study('uicancel', {}, hangAfterBaseline);
  await waitFor('experiment 1 training', async () => (await run.status()).inFlight.some((l) => l.id === 'uicancel-1' && l.phase === 'training'));
  const started = Date.now();
  await run.handle.cancel(); // what the Web UI's "Request Cancellation" does
  await assert.rejects(run.result(), /cancel/i);
  assert.ok(Date.now() - started < 20_000, 'the hung training did not run to its timeout');
  const records = await readRecords(run.repo, 'uicancel');
  const last = records.find((r) => r.id === 'uicancel-1')!;
  assert.equal(last.status, 'crash');
  assert.equal(last.reason, 'cancelled');
  assert.equal((await rows(run.repo, 'uicancel')).length, records.length);
  assert.equal((await run.handle.describe()).status.name, 'CANCELLED');
  const child = await env.client.workflow.getHandle(experimentWorkflowId('uicancel-1')).describe();
  assert.equal(child.status.name, 'COMPLETED', 'the experiment workflow closed too');
});
