// A long night: past a hundred experiments the workflow continues as new, carrying its state, so
// each history stays small however long the study runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { closeDevServer, devServer, gitIn, makeRepo, runWorkers } from './helpers';

const EXPERIMENTS = 105; // one continue-as-new at 100
// Six hyperparameters leave the sweep plenty to try; the score is a hash of the file, so some
// candidates win and the best keeps moving.
const TRAIN = ['A', 'B', 'C', 'D', 'E', 'F'].map((name, i) => `${name} = ${i + 2}  # knob ${name}`).join('\n') + '\n';
const SCORE = `python3 -c "import hashlib; h = hashlib.md5(open('train.py', 'rb').read()).hexdigest(); print('---'); print('val_bpb:', 1 + int(h[:6], 16) / 1e8)"`;

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

test(`a study of ${EXPERIMENTS} experiments continues as new and completes with one row per experiment`, async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  const tag = 'long';
  const config: RunConfig = {
    tag, repo, proposer: 'sweep', editable: ['train.py'], command: SCORE, timeoutMs: 20_000,
    budgetSeconds: 1, parallel: 2, maxExperiments: EXPERIMENTS, seed: 3, minImprovement: 0,
  };
  const firstRunId = await startRun(async () => env.client, config).then(() => env.client.workflow.getHandle(workflowIdFor(tag)).describe()).then((d) => d.runId);
  const handle = env.client.workflow.getHandle(workflowIdFor(tag));
  const finished = handle.result() as Promise<StatusView>;
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, finished);
  const view = await finished;
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, EXPERIMENTS);

  const first = env.client.workflow.getHandle(workflowIdFor(tag), firstRunId);
  assert.equal((await first.describe()).status.name, 'CONTINUED_AS_NEW');
  const lastRun = await handle.describe();
  assert.notEqual(lastRun.runId, firstRunId);
  for (const [name, h] of [['first run', first], ['last run', env.client.workflow.getHandle(workflowIdFor(tag), lastRun.runId)]] as const) {
    const events = (await h.fetchHistory()).events!.length;
    console.log(`events in the ${name}: ${events}`);
    assert.ok(events < 5_000, `${name}: ${events} events`);
  }

  const records = (await readFile(join(repo, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(new Set(records.map((r) => r.id)).size, EXPERIMENTS);
  assert.equal((await readFile(join(repo, 'results.tsv'), 'utf8')).trim().split('\n').length, EXPERIMENTS + 1);
  const committed = records.filter((r) => r.commit !== null).length;
  assert.equal(gitIn(repo, 'for-each-ref', '--format=%(refname)', `refs/autoresearch/${tag}/`).split('\n').length, committed);
  const best = records.filter((r) => r.status === 'keep').reduce((a, b) => (b.valBpb < a.valBpb ? b : a));
  assert.equal(gitIn(repo, 'rev-parse', `autoresearch/${tag}`), best.commit);
  assert.equal(view.best!.commit, best.commit, 'the best survived continue-as-new');
});
