// A long night: four hundred experiments with a trivial training command. Every forty (a hundred by
// default) the study continues as new, carrying its state and its pipeline, so each history stays
// small and the workers' memory flat.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resultsDir } from '../activities/results';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { fetchStatus } from '../scripts/status';
import { closeDevServer, devServer, gitIn, makeRepo, runWorkers, waitFor } from './helpers';

const EXPERIMENTS = 400;
const PER_HISTORY = 40;
const TRAIN = ['A', 'B', 'C', 'D', 'E', 'F'].map((name, i) => `${name} = ${i + 2}.5  # knob ${name}`).join('\n') + '\n';
// The score is a function of the knobs (a rerun of the best scores as the best did): a higher sum is better, and
// by a hash of the file about one in five candidates is worse and one in seven crashes, so all three outcomes recur.
const SCORE = `python3 -c "
import hashlib, re, sys
src = open('train.py').read()
h = int(hashlib.sha256(src.encode()).hexdigest(), 16)
if h % 7 == 6: sys.exit('crash')
print('---')
print('val_bpb:', 3.0 if h % 5 == 4 else 2 - sum(float(v) for v in re.findall('= ([0-9.]+)', src)) / 1000)
"`;

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

test(`a study of ${EXPERIMENTS} experiments continues as new and completes with one row per experiment`, async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  const tag = 'long';
  const config: RunConfig = {
    tag, repo, proposer: 'sweep', editable: ['train.py'], command: SCORE, timeoutMs: 20_000,
    budgetSeconds: 1, parallel: 2, maxExperiments: EXPERIMENTS, seed: 3, minImprovement: 0, experimentsPerHistory: PER_HISTORY,
  };
  const firstRunId = await startRun(async () => env.client, config).then(() => env.client.workflow.getHandle(workflowIdFor(tag)).describe()).then((d) => d.runId);
  const handle = env.client.workflow.getHandle(workflowIdFor(tag));
  const finished = handle.result() as Promise<StatusView>;
  const mib = () => Math.round(process.memoryUsage().rss / 2 ** 20);
  let warm = 0;
  const sample = waitFor('100 experiments', async () => (await fetchStatus(env.client, tag)).experimentsDone >= 100, 900_000, 500).then(() => (warm = mib()));
  const started = Date.now();
  await Promise.all([runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished), sample]);
  const view = await finished;
  const end = mib();
  console.log(`${EXPERIMENTS} experiments in ${Math.round((Date.now() - started) / 1000)}s; workers' memory (rss) after 100: ${warm} MiB, at the end: ${end} MiB`);
  assert.ok(end - warm < 150, `memory grew from ${warm} to ${end} MiB`);
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, EXPERIMENTS);

  const first = env.client.workflow.getHandle(workflowIdFor(tag), firstRunId);
  assert.equal((await first.describe()).status.name, 'CONTINUED_AS_NEW');
  const lastRun = await handle.describe();
  assert.notEqual(lastRun.runId, firstRunId);
  const runs = [];
  for await (const execution of env.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(tag)}"` })) runs.push(execution.runId);
  // A run continues as new once it has launched PER_HISTORY and its own proposals and records have settled.
  assert.ok(Math.abs(runs.length - EXPERIMENTS / PER_HISTORY) <= 1, `${runs.length} runs: about one per ${PER_HISTORY} experiments`);
  const events = await Promise.all(runs.map(async (runId) => (await env.client.workflow.getHandle(workflowIdFor(tag), runId).fetchHistory()).events!.length));
  console.log(`events per run: ${events.join(' ')} (Temporal warns at 10,240)`);
  for (const count of events) assert.ok(count < 5_000, `${count} events`);

  const records = (await readFile(join(resultsDir(repo, tag), 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(new Set(records.map((r) => r.id)).size, EXPERIMENTS);
  // The children outlive each boundary: every trained experiment's own workflow completed with its decision.
  const trained = records.filter((r) => r.runs).length;
  const query = `ResearchTag = "${tag}" AND ExecutionStatus = "Completed" AND ExperimentStatus IS NOT NULL`;
  await waitFor(`${trained} completed experiment workflows`, async () => (await env.client.workflow.count(query)).count === trained, 30_000);
  assert.equal((await readFile(join(resultsDir(repo, tag), 'results.tsv'), 'utf8')).trim().split('\n').length, EXPERIMENTS + 1);
  const committed = records.filter((r) => r.commit !== null).length;
  assert.equal(gitIn(repo, 'for-each-ref', '--format=%(refname)', `refs/autoresearch/${tag}/${tag}-*`).split('\n').length, committed);
  const best = records.filter((r) => r.status === 'keep').reduce((a, b) => (b.valBpb < a.valBpb ? b : a));
  assert.equal(gitIn(repo, 'rev-parse', `autoresearch/${tag}`), best.commit);
  assert.equal(view.best!.commit, best.commit, 'the best survived continue-as-new');
});
