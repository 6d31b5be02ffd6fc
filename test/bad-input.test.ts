// Bad input from the training side and from a human at the keyboard: each gets a specific message,
// and the run's state, branch, refs and results stay consistent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRun } from '../scripts/runs';
import { fetchStatus } from '../scripts/status';
import { resultsDir } from '../activities/results';
import { RESULTS_JSONL, RESULTS_TSV, workflowIdFor, type ExperimentRecord, type RunConfig, type StatusView } from '../workflows/types';
import { cli, closeDevServer, devServer, gitIn, makeRepo, runWorkers, waitFor } from './helpers';

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

async function study(files: Record<string, string>, extra: Partial<RunConfig>) {
  const repo = await makeRepo(files);
  const tag = extra.tag!;
  const config: RunConfig = {
    tag, repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 60_000,
    budgetSeconds: 1, parallel: 1, seed: 0, minImprovement: 0, maxExperiments: 3, ...extra,
  };
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor(tag)).result() as Promise<StatusView>;
  const ran = runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, finished);
  const records = async (): Promise<ExperimentRecord[]> => {
    const text = await readFile(join(resultsDir(repo, tag), RESULTS_JSONL), 'utf8');
    return text.trim().split('\n').map((l) => JSON.parse(l));
  };
  return { repo, finished, ran, records, status: () => fetchStatus(env.client, tag) };
}

// Single quotes: it is used inside f-strings, which before Python 3.12 cannot reuse their quote.
const experimentNumber = "int(os.environ['AUTORESEARCH_EXPERIMENT_ID'].rsplit('-', 1)[1])";

test('a training command that does not exist fails the run at its baseline, saying so', async () => {
  const run = await study({ 'train.py': 'LR = 0.1  # lr\n' }, { tag: 'missing-command', command: 'no-such-trainer train.py' });
  await assert.rejects(run.finished, (err: Error) => /the baseline did not score \(exit code 127\); fix the research repo and start again/.test((err.cause as Error).message));
  await run.ran;
  const [baseline] = await run.records();
  assert.equal(baseline.status, 'crash');
  assert.match(baseline.logTail!, /no-such-trainer: command not found/);
  const status = await run.status();
  assert.equal(status.state, 'failed');
  assert.match(status.reason!, /exit code 127/);
});

test('a candidate that rewrites the harness is rejected by its digest, never scored', async () => {
  const train = `LR = 0.1  # lr
import os
if ${experimentNumber} > 0:
    with open("prepare.py", "a") as f:
        f.write("EVAL_BYTES = 1  # easier now\\n")
print("---")
print("val_bpb: 0.5" if ${experimentNumber} > 0 else "val_bpb: 1.0")
`;
  const run = await study({ 'train.py': train, 'prepare.py': 'EVAL_BYTES = 1000  # the fixed harness\n' }, { tag: 'harness' });
  const view = await run.finished;
  await run.ran;
  const records = await run.records();
  assert.deepEqual(records.map((r) => r.status), ['keep', 'crash', 'crash']);
  for (const r of records.slice(1)) {
    assert.equal(r.reason, 'the training command modified the harness; its score is not comparable');
    assert.equal(r.valBpb, null);
  }
  assert.equal(view.best!.valBpb, 1.0);
  assert.equal(gitIn(run.repo, 'rev-parse', 'autoresearch/harness'), records[0].commit);
});

test('a training that prints a gigabyte is scored from its summary while the worker\'s memory stays bounded', async () => {
  const train = `LR = 0.1  # lr
import os, sys
if ${experimentNumber} > 0:
    line = ("x" * 1023 + "\\n").encode()
    for _ in range(1024 * 1024):
        sys.stdout.buffer.write(line)
    sys.stdout.flush()
print("---")
print(f"val_bpb:          {1 - ${experimentNumber} / 10:.6f}")
`;
  const run = await study({ 'train.py': train }, { tag: 'gigabyte', maxExperiments: 2 });
  await waitFor('the baseline', async () => (await run.status()).experimentsDone >= 1, 60_000, 20);
  const before = process.memoryUsage().rss; // workers up and warm: what follows is the gigabyte
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  await run.finished;
  await run.ran;
  clearInterval(sampler);
  const records = await run.records();
  assert.equal(records[1].status, 'keep');
  assert.equal(records[1].valBpb, 0.9);
  assert.ok(records[1].trainingSeconds > 0);
  const growth = (peak - before) / 2 ** 20;
  console.log(`worker memory while a training printed 1 GiB: +${growth.toFixed(0)} MiB`);
  assert.ok(growth < 100, `memory grew by ${growth.toFixed(0)} MiB`);
});

test('a repo edited by hand while paused: program.md and uncommitted edits are fine, a changed harness is refused by name', async () => {
  const train = `LR = 0.1  # lr
import time
time.sleep(0.5)
print("---")
print(f"val_bpb:          {1 + LR:.6f}")
`;
  const run = await study({ 'train.py': train, 'prepare.py': 'EVAL = 1  # harness\n' }, { tag: 'edited', maxExperiments: 6 });
  await waitFor('two experiments done', async () => (await run.status()).experimentsDone >= 2);
  assert.equal((await cli(['pause', 'edited'], { TEMPORAL_ADDRESS: env.address })).code, 0);
  const paused = await waitFor('the pause to settle', async () => {
    const view = await run.status();
    return view.state === 'paused' && !view.inFlight.some((l) => l.phase === 'training' || l.phase === 'deciding') && view;
  });
  // The human edits: the instructions (read at the next proposal), an uncommitted train.py (never
  // touched by the run, which builds on its best commit), and a committed change to the harness.
  await writeFile(join(run.repo, 'program.md'), '# research\nNew direction.\n');
  await writeFile(join(run.repo, 'train.py'), 'LR = 123  # my local experiment\n');
  await writeFile(join(run.repo, 'prepare.py'), 'EVAL = 2  # harness, changed\n');
  gitIn(run.repo, 'commit', '--quiet', '-m', 'change the harness', 'prepare.py');
  const branchBefore = gitIn(run.repo, 'rev-parse', 'autoresearch/edited');
  assert.equal((await cli(['resume', 'edited'], { TEMPORAL_ADDRESS: env.address })).code, 0);
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed');
  const records = await run.records();
  assert.equal(records.length, 6);
  for (const r of records.slice(paused.experimentsDone)) {
    assert.equal(r.status, 'crash');
    assert.match(r.reason, /^harness mismatch: the checkout of .* differs from the run's harness; update it to the run's base commit$/);
  }
  assert.equal(gitIn(run.repo, 'rev-parse', 'autoresearch/edited'), branchBefore, 'the branch did not move');
  assert.equal(await readFile(join(run.repo, 'train.py'), 'utf8'), 'LR = 123  # my local experiment\n', 'the human\'s edit is untouched');
  assert.equal(gitIn(run.repo, 'for-each-ref', '--format=%(refname)', 'refs/autoresearch/edited/edited-*').split('\n').length, 6);
});

test('a branch moved by hand while paused stops the run with the reason, every row and ref kept', async () => {
  const train = `LR = 0.1  # lr
import os
print("---")
print(f"val_bpb:          {1 - ${experimentNumber} / 10:.6f}")
`;
  const run = await study({ 'train.py': train }, { tag: 'moved', maxExperiments: 6 });
  await waitFor('two experiments done', async () => (await run.status()).experimentsDone >= 2);
  assert.equal((await cli(['pause', 'moved'], { TEMPORAL_ADDRESS: env.address })).code, 0);
  await waitFor('the pause to settle', async () => {
    const view = await run.status();
    return view.state === 'paused' && !view.inFlight.some((l) => l.phase === 'training' || l.phase === 'deciding');
  });
  gitIn(run.repo, 'branch', '--force', 'autoresearch/moved', 'main');
  assert.equal((await cli(['resume', 'moved'], { TEMPORAL_ADDRESS: env.address })).code, 0);
  await assert.rejects(run.finished, (err: Error) => {
    assert.match((err.cause as Error).message, /^branch autoresearch\/moved was moved outside the run \(expected [0-9a-f]{7}, found [0-9a-f]{7}\); every candidate is still at refs\/autoresearch\/moved\/$/);
    return true;
  });
  await run.ran;
  const records = await run.records();
  const rows = (await readFile(join(resultsDir(run.repo, 'moved'), RESULTS_TSV), 'utf8')).trim().split('\n').slice(1);
  assert.equal(rows.length, records.length, 'the row of the experiment that found the branch moved is kept');
  assert.equal(gitIn(run.repo, 'for-each-ref', '--format=%(refname)', 'refs/autoresearch/moved/moved-*').split('\n').length, records.length);
  assert.equal(gitIn(run.repo, 'rev-parse', 'autoresearch/moved'), gitIn(run.repo, 'rev-parse', 'main'), 'the human\'s move is left alone');
  assert.equal((await run.status()).state, 'failed');
});
