// The research loop end to end on a real dev server, real git and real child processes, with a
// training script whose one hyperparameter picks its behaviour: better, worse, crash, hang, no metric.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatScore, resultsDir, TSV_HEADER } from '../activities/results';
import { researchWorkflow } from '../workflows';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT, RESEARCH_TAG } from '../workflows/search-attributes';
import { CONTROL_QUEUE, workflowIdFor, type ExperimentRecord, type RunConfig } from '../workflows/types';
import { BEHAVIOUR_SCRIPT, closeDevServer, devServer, gitIn, makeRepo, runWorkers } from './helpers';


let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

// These tests name every row: a slot waiting on a proposal slowed by a loaded machine must not train a rerun.
function config(repo: string, tag: string, extra: Partial<RunConfig> = {}): RunConfig {
  return {
    rerunGraceMs: 60_000,
    tag, repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 4_000,
    budgetSeconds: 1, parallel: 1, maxExperiments: 7, seed: 1, minImprovement: 0, ...extra,
  };
}

async function runStudy(repo: string, cfg: RunConfig) {
  const handle = await env.client.workflow.start(researchWorkflow, {
    workflowId: workflowIdFor(cfg.tag), taskQueue: CONTROL_QUEUE, args: [cfg],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: cfg.tag }],
  });
  const finished = handle.result();
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, finished);
  return { handle, view: await finished };
}

test('each candidate is kept, discarded or recorded as a crash with its reason, and the branch holds only kept commits', async () => {
  const repo = await makeRepo({ 'train.py': BEHAVIOUR_SCRIPT, 'prepare.py': '# the fixed harness\n' });
  const { handle, view } = await runStudy(repo, config(repo, 'decisions'));
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, 7, view.reason);

  const records: ExperimentRecord[] = (await readFile(join(resultsDir(repo, 'decisions'), 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const byX = new Map(records.map((r) => [r.n === 0 ? 4 : Number(/-> (\d+)/.exec(r.description)![1]), r]));
  assert.deepEqual([...byX.keys()].sort((a, b) => a - b), [1, 2, 4, 8, 16, 32, 64]);
  assert.equal(byX.get(4)!.status, 'keep');
  assert.equal(byX.get(4)!.description, 'baseline');
  assert.equal(byX.get(8)!.status, 'keep');
  assert.equal(byX.get(8)!.valBpb, 0.8);
  assert.equal(byX.get(2)!.status, 'discard');
  assert.match(byX.get(16)!.reason, /exit code 1/);
  assert.match(byX.get(16)!.logTail!, /boom: X is too big/);
  assert.match(byX.get(1)!.reason, /timeout/);
  assert.match(byX.get(32)!.reason, /no val_bpb/);
  assert.match(byX.get(64)!.reason, /not finite/);
  for (const x of [16, 1, 32, 64]) assert.equal(byX.get(x)!.status, 'crash', `X=${x}`);

  // results.tsv: the original's exact format, one row per experiment in recording order.
  const tsv = (await readFile(join(resultsDir(repo, 'decisions'), 'results.tsv'), 'utf8')).trimEnd().split('\n');
  assert.equal(tsv[0], TSV_HEADER);
  assert.equal(tsv.length, 8);
  for (const [i, r] of records.entries()) {
    const [commit, valBpb, memoryGb, status, description] = tsv[i + 1].split('\t');
    assert.equal(commit, r.commit!.slice(0, 7));
    assert.equal(valBpb, formatScore(r.valBpb));
    assert.equal(status, r.status);
    assert.equal(description, r.description);
    assert.equal(memoryGb, r.status === 'crash' && r.valBpb === null && !r.metrics.peak_vram_mb ? '0.0' : '2.0');
  }

  // Git: the branch sits on the best kept commit; every candidate keeps its own ref.
  const best = byX.get(8)!.commit!;
  assert.equal(gitIn(repo, 'rev-parse', 'autoresearch/decisions'), best);
  assert.equal(view.best!.commit, best);
  const refs = gitIn(repo, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/autoresearch/decisions/decisions-*').split('\n');
  assert.equal(refs.length, 7);
  for (const r of records) {
    assert.ok(refs.includes(`refs/autoresearch/decisions/${r.id} ${r.commit}`), `ref for ${r.id}`);
    const onBranch = gitIn(repo, 'branch', '--contains', r.commit!, '--list', 'autoresearch/*') !== '';
    assert.equal(onBranch, r.status === 'keep', `${r.id} (${r.status}) on the branch`);
    if (r.n > 0) assert.match(gitIn(repo, 'log', '-1', '--format=%B', r.commit!), new RegExp(`Experiment-Id: ${r.id}`));
  }
  assert.equal(gitIn(repo, 'status', '--porcelain', '--untracked-files=no'), '', 'the working tree is untouched');
  assert.equal(gitIn(repo, 'rev-parse', '--abbrev-ref', 'HEAD'), 'main');

  // The Web UI's columns: search attributes and memo.
  const described = await handle.describe();
  assert.equal(described.typedSearchAttributes.get(BEST_VAL_BPB), 0.8);
  assert.equal(described.typedSearchAttributes.get(EXPERIMENTS_DONE), 7);
  assert.equal(described.typedSearchAttributes.get(EXPERIMENTS_KEPT), 2);
  assert.equal(described.memo?.bestCommit, best);
});

test('a baseline that does not score fails the run with the reason, after recording its row', async () => {
  const repo = await makeRepo({ 'train.py': 'LR = 0.1  # learning rate\nraise SystemExit("no data")\n' });
  const { view } = await runStudy(repo, config(repo, 'broken')).then(
    () => assert.fail('the run should fail'),
    (err: Error) => ({ view: err }),
  );
  assert.match((view.cause as Error).message, /baseline did not score \(exit code 1\)/);
  const tsv = (await readFile(join(resultsDir(repo, 'broken'), 'results.tsv'), 'utf8')).trimEnd().split('\n');
  assert.equal(tsv.length, 2);
  assert.match(tsv[1], /\t0\.000000\t0\.0\tcrash\tbaseline$/);
});
