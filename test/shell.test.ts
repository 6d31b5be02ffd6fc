// The study's shell on a real dev server, at the seams between runs: a confirmation whose repeat signal
// crosses a continue-as-new, and an experiment terminated by hand (as from the Web UI) after the run that
// started it has continued as new. Both hung the night for ever before the state machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { researchWorkflow, statusQuery } from '../workflows';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import { CONTROL_QUEUE, experimentWorkflowId, workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { closeDevServer, devServer, makeRepo, runWorkers, studyConfig, waitFor } from './helpers';

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

// The knobs do nothing: every score is 1 plus seeded noise, so about half the candidates are near-ties to confirm.
const noisy = (hangs = -1) => `A = 1  # does nothing
B = 1  # nor this
C = 1  # nor this
D = 1  # nor this
E = 1  # nor this
F = 1  # nor this
import os, random, time
seed = int(os.environ["AUTORESEARCH_SEED"])
# a confirmation (training 2 of a candidate: seed % 16 is its index) takes 4 s, so the run continues as new meanwhile
time.sleep(600 if os.environ["AUTORESEARCH_EXPERIMENT_ID"].endswith("-${hangs}") else 4 if seed % 16 and seed // 16 % 62500 else 0)
print("---")
print(f"val_bpb:          {1 + random.Random(seed).gauss(0, 0.01):.6f}")
`;

async function start(cfg: RunConfig) {
  const handle = await env.client.workflow.start(researchWorkflow, {
    workflowId: workflowIdFor(cfg.tag),
    taskQueue: CONTROL_QUEUE,
    args: [cfg],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: cfg.tag }],
  });
  return { handle, finished: handle.result() as Promise<StatusView> };
}

/** Each run of the study's workflow id, oldest first: the experiments it sent a repeat to, and those whose repeat reported to it. */
async function repeatsByRun(tag: string): Promise<{ sent: string[]; reported: string[] }[]> {
  const runs = [];
  for await (const run of env.client.workflow.list({ query: `WorkflowId = '${workflowIdFor(tag)}'` })) runs.push(run);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  const decode = (p: { data?: Uint8Array | null } | undefined) => JSON.parse(Buffer.from(p!.data!).toString());
  const out = [];
  for (const run of runs) {
    const { events } = await env.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    const sent = events!.flatMap((e) => {
      const a = e.signalExternalWorkflowExecutionInitiatedEventAttributes;
      return a?.signalName === 'repeat' ? [a.workflowExecution!.workflowId!] : [];
    });
    const reported = events!.flatMap((e) => {
      const a = e.workflowExecutionSignaledEventAttributes;
      const trained = a?.signalName === 'trained' ? decode(a.input!.payloads![0]) : null;
      return trained && trained.run > 0 ? [experimentWorkflowId(trained.experimentId)] : [];
    });
    out.push({ sent, reported });
  }
  return out;
}

test('a near-tie confirmed across continue-as-new boundaries is recorded once, with both runs, and the night ends', async () => {
  const repo = await makeRepo({ 'train.py': noisy() });
  const cfg = studyConfig(repo, 'confirm-cross', { parallel: 2, baselineRuns: 2, experimentsPerHistory: 1, maxExperiments: 20, confirmZ: 3 });
  const { finished } = await start(cfg);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished);
  const view = await finished;
  assert.equal(view.state, 'completed', view.reason);
  const records = await readRecords(repo, 'confirm-cross');
  // 20 experiments, or fewer where the sweep ran out of steps (its knobs do nothing: nothing is kept to step from).
  assert.ok(records.length >= 12 && records.length <= 20, `${records.length} rows: ${view.reason}`);
  assert.deepEqual(records.map((r) => r.n).sort((a, b) => a - b), Array.from({ length: records.length }, (_, n) => n), 'one row per experiment');
  assert.equal(view.experimentsDone, records.length);
  const confirmed = records.filter((r) => r.n > 0 && (r.runs?.length ?? 0) === 2);
  assert.ok(confirmed.length > 0, 'some near-tie was trained again');
  for (const r of confirmed) assert.notEqual(r.runs![0].seed, r.runs![1].seed, `${r.id}: its confirmation ran on a fresh seed`);
  const runs = await repeatsByRun('confirm-cross');
  const crossed = runs.flatMap(({ sent }, i) => sent.filter((id) => runs.slice(i + 1).some((later) => later.reported.includes(id))));
  assert.ok(crossed.length > 0, `some repeat was sent by one run and reported to a later one (${runs.length} runs)`);
  assert.equal(view.inFlight.length, 0, 'nothing left training');
});

test('an experiment terminated by hand after the run that started it continued as new gets a crash row and frees its slot', async () => {
    const repo = await makeRepo({ 'train.py': noisy(3) });
    const cfg = studyConfig(repo, 'terminated', { parallel: 2, experimentsPerHistory: 1, maxExperiments: 8, timeoutMs: 300_000, confirmZ: 0 });
    const { handle, finished } = await start(cfg);
    const workers = runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished);
    const training = async () => (await handle.query(statusQuery)).inFlight.some((x) => x.id === 'terminated-3' && x.phase === 'training');
    await waitFor('experiment 3 training', training);
    const startedIn = (await handle.describe()).runId;
    await waitFor('a continue-as-new since it started', async () => (await handle.describe()).runId !== startedIn && (await training()));
    await env.client.workflow.getHandle(experimentWorkflowId('terminated-3')).terminate('by hand, from the Web UI');
    const view = await finished;
    await workers;
    assert.equal(view.state, 'completed', view.reason);
    const records = await readRecords(repo, 'terminated');
    assert.equal(records.length, 8, 'every experiment has its row');
    const row = records.find((r) => r.n === 3)!;
    assert.equal(row.status, 'crash');
    assert.match(row.reason, /its workflow was terminated by hand/);
});
