// The pipeline: proposals prepared ahead of the slots, rebased when the best moves, a branch that only
// fast-forwards under any parallelism, and budgets that hold exactly with proposals in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { fetchStatus } from '../scripts/status';
import { startRun, stopRun, pauseRun, resumeRun } from '../scripts/runs';
import { workflowIdFor, type ExperimentRecord, type RunConfig, type StatusView } from '../workflows/types';
import { answer, type FakeOpenAI, type Recorded, type Reply } from './fake-openai';
import { withServers, gitIn, makeRepo, runWorkers, studyConfig, waitFor } from './helpers';

// Six knobs; moving any of them away from 4 helps, each by its own amount, so parallel candidates race to
// the branch and a later one often beats an earlier keep that overtook its parent.
const KNOBS = `A = 4  # each knob helps when moved
B = 4
C = 4
D = 4
E = 4
F = 4
SLEEP = 1.0  # seconds of "training"
import time
time.sleep(SLEEP)
gain = sum(0.01 * (i + 1) for i, v in enumerate((A, B, C, D, E, F)) if v != 4)
print("---")
print(f"val_bpb:          {1.0 - gain:.6f}")
`;

// Two knobs for scripted LLM answers: raising X helps most, raising Y a little.
const XY = `X = 4  # the big knob
Y = 4  # the small knob
import time
time.sleep(1.5)
print("---")
print(f"val_bpb:          {1.0 - 0.1 * (X == 8) - 0.05 * (Y == 8) - 0.01 * (Y == 2):.6f}")
`;

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
withServers((e, f) => ((env = e), (fake = f)));

async function study(train: string, cfg: (repo: string) => RunConfig, slots: number) {
  const repo = await makeRepo({ 'train.py': train });
  const c = cfg(repo);
  await startRun(async () => env.client, c);
  const handle = env.client.workflow.getHandle(workflowIdFor(c.tag));
  const finished = handle.result() as Promise<StatusView>;
  const ran = runWorkers(env.nativeConnection, { checkout: repo, slots }, finished);
  return { repo, tag: c.tag, handle, finished, ran, status: () => fetchStatus(env.client, c.tag) };
}

const isAncestor = (repo: string, a: string, b: string) => {
  try {
    gitIn(repo, 'merge-base', '--is-ancestor', a, b);
    return true;
  } catch {
    return false;
  }
};

function llm(replies: Reply[]): void {
  fake.script.length = 0;
  fake.requests.length = 0;
  fake.script.push(...replies);
}

const edit = (description: string, search: string, replace: string): Reply => ({
  content: answer(description, [{ path: 'train.py', search, replace }]),
  tokens: 100,
});

test('with --parallel 3 every kept commit descends from the keep before it, and the branch only fast-forwards', async () => {
  const run = await study(KNOBS, (repo) => studyConfig(repo, 'race', { parallel: 3, maxExperiments: 13 }), 3);
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed');
  const records = await readRecords(run.repo, run.tag);
  assert.equal(records.length, 13);
  const keeps = records.filter((r) => r.status === 'keep');
  assert.ok(keeps.length >= 3, `${keeps.length} keeps`);
  for (const [i, k] of keeps.entries()) {
    if (i === 0) continue;
    assert.equal(k.parent, keeps[i - 1].commit, `${k.id} trained on the keep before it`);
    assert.ok(isAncestor(run.repo, keeps[i - 1].commit!, k.commit!), `${keeps[i - 1].id} is an ancestor of ${k.id}`);
  }
  assert.equal(gitIn(run.repo, 'rev-parse', `autoresearch/${run.tag}`), keeps.at(-1)!.commit);
  // Every move of the branch, as git logged it, was a fast-forward.
  const moves = gitIn(run.repo, 'reflog', '--format=%H', `autoresearch/${run.tag}`).split('\n').reverse();
  for (let i = 1; i < moves.length; i++)
    assert.ok(isAncestor(run.repo, moves[i - 1], moves[i]), `move ${i} fast-forwards`);
  // Three lanes raced: some wins landed on a parent that was overtaken, and went round again on the new best.
  const requeued = records.filter((r) => /overtaken meanwhile: merged onto the new best to train again/.test(r.reason));
  assert.ok(requeued.length > 0, 'a stale win was queued again');
  for (const r of records.filter((x) => x.n > 0 && x.commit && x.commit !== x.parent)) { // a rerun's commit is its parent
    assert.equal(
      gitIn(run.repo, 'rev-parse', `${r.commit}^`),
      r.parent,
      `${r.id}'s commit sits on its recorded parent`,
    );
  }
});

test('a queued proposal is merged onto the best when it moves, and one that conflicts with it is proposed afresh', async () => {
  llm([
    edit('raise X', 'X = 4', 'X = 8'),
    edit('raise Y', 'Y = 4', 'Y = 8'),
    { ...edit('lower Y', 'Y = 4', 'Y = 2'), chunkDelayMs: 100 }, // slower than raise Y's merge, so raise Y trains first
    edit('note the knobs', 'X = 8  # the big knob', 'X = 8  # the big knob, raised'),
  ]);
  const run = await study(
    XY,
    (repo) => studyConfig(repo, 'rebase', { proposer: 'llm', model: 'm', ahead: 1, maxExperiments: 4, rerunGraceMs: 60_000 }), // no rerun while a proposal is late
    1,
  );
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed', view.reason);
  const records = await readRecords(run.repo, run.tag);
  assert.deepEqual(
    records.map((r) => r.description),
    ['baseline', 'raise X', 'raise Y', 'note the knobs'],
  );
  const [, x, y, note] = records;
  assert.equal(x.status, 'keep');
  assert.equal(y.status, 'keep', 'raise Y, proposed on the baseline, was merged onto raise X and kept there');
  assert.equal(y.parent, x.commit);
  assert.match(gitIn(run.repo, 'show', `${y.commit}:train.py`), /^X = 8 .*\nY = 8 /);
  // Proposal refs go once their experiments have refs of their own: none is left after the night.
  assert.equal(gitIn(run.repo, 'for-each-ref', `refs/autoresearch/${run.tag}/proposals/`), '');
  // "lower Y" changed Y = 4, which raise Y changed too once kept: it conflicts, is never trained, and is proposed afresh.
  assert.equal(note.parent, y.commit);
  assert.equal(fake.requests.length, 4);
});

test('--max-experiments and --max-tokens-total hold exactly with proposals ahead', async () => {
  fake.script.length = 0;
  fake.requests.length = 0;
  let k = 0;
  fake.fallback = () => edit(`set Y to ${++k + 10}`, 'Y = 4', `Y = ${k + 10}`);
  const counted = await study(
    XY,
    (repo) => studyConfig(repo, 'exact', { proposer: 'llm', model: 'm', parallel: 2, ahead: 3, maxExperiments: 5 }),
    2,
  );
  const view = await counted.finished;
  await counted.ran;
  assert.equal(view.experimentsDone, 5);
  assert.equal(
    (await readRecords(counted.repo, counted.tag)).length,
    5,
    'a prepared proposal never trained is not an experiment',
  );

  fake.requests.length = 0;
  const budget = 3_500;
  const spent = await study(
    XY,
    (repo) => studyConfig(repo, 'tokens', { proposer: 'llm', model: 'm', parallel: 2, ahead: 2, maxTokensTotal: budget }),
    2,
  );
  const final = await spent.finished;
  await spent.ran;
  assert.equal(final.state, 'completed');
  assert.match(final.reason!, /token budget/);
  assert.ok(final.tokensUsed <= budget, `${final.tokensUsed} tokens used of ${budget}`);
  const records = await readRecords(spent.repo, spent.tag);
  assert.equal(
    records.reduce((sum, r) => sum + r.tokens, 0),
    final.tokensUsed,
    'every token is on a row',
  );
  fake.fallback = () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' });
});

test('at each continue-as-new boundary the next run is handed a ready candidate for every slot', async () => {
  fake.script.length = 0;
  fake.requests.length = 0;
  // A model that takes about half a second an answer, turning the knobs in turn: had the run let its queue run dry
  // at the boundary, the next run's slots would wait for its first answers.
  let k = 0;
  fake.fallback = () => {
    const knob = 'ABCDEF'[k % 6];
    const value = 5 + Math.floor(k++ / 6);
    return { content: answer(`set ${knob} to ${value}`, [], 'best', { [knob]: value }), chunkDelayMs: 80 };
  };
  const slots = 2;
  const max = 11;
  const run = await study(
    KNOBS.replace('SLEEP = 1.0', 'SLEEP = 3.0'),
    (repo) => studyConfig(repo, 'boundary', { proposer: 'llm', model: 'm', parallel: slots, maxExperiments: max, experimentsPerHistory: 3 }),
    slots,
  );
  const view = await run.finished;
  await run.ran;
  fake.fallback = () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' });
  assert.equal(view.state, 'completed', view.reason);
  assert.equal(view.experimentsDone, max);
  const handed: string[] = [];
  for await (const execution of env.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(run.tag)}"` })) {
    const history = await env.client.workflow.getHandle(workflowIdFor(run.tag), execution.runId).fetchHistory();
    const input = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads!;
    if (input.length < 2) continue; // the first run: nothing carried
    const { study: carried } = JSON.parse(Buffer.from(input[1].data!).toString('utf8')) as { study: { nextNumber: number; ready: unknown[] } };
    handed.push(`${carried.ready.length} ready at ${carried.nextNumber}`);
    assert.ok(
      carried.ready.length >= Math.min(slots, max - carried.nextNumber),
      `a run continued as new with only ${carried.ready.length} ready, ${max - carried.nextNumber} experiments to go`,
    );
  }
  assert.ok(handed.length >= 2, `${handed.length} continue-as-new: ${handed.join(', ')}`);
});

test('paused, queued proposals wait and nothing new trains; resumed, they train; stopped, nothing queued trains', async () => {
  fake.script.length = 0;
  let k = 0;
  fake.fallback = () => edit(`set Y to ${++k + 10}`, 'Y = 4', `Y = ${k + 10}`);
  const run = await study(XY, (repo) => studyConfig(repo, 'queue', { proposer: 'llm', model: 'm', ahead: 2 }), 1);
  await waitFor('two proposals queued behind a training', async () => {
    const v = await run.status();
    return (
      v.inFlight.filter((l) => l.phase === 'queued').length === 2 && v.inFlight.some((l) => l.phase === 'training')
    );
  });
  await pauseRun(env.client, run.tag);
  const paused = await waitFor('the training to finish', async () => {
    const v = await run.status();
    return v.state === 'paused' && !v.inFlight.some((l) => l.phase === 'training' || l.phase === 'deciding') && v;
  });
  const queued = paused.inFlight.filter((l) => l.phase === 'queued').map((l) => l.description);
  assert.equal(queued.length, 2, 'the queue survives the pause');
  await new Promise((r) => setTimeout(r, 2_500));
  assert.equal((await run.status()).experimentsDone, paused.experimentsDone, 'nothing trained while paused');

  await resumeRun(env.client, run.tag);
  await waitFor('the queued proposals to train', async () => {
    const done = (await readRecords(run.repo, run.tag)).map((r) => r.description);
    return queued.every((d) => done.includes(d));
  });
  await waitFor('a training with proposals queued', async () => {
    const v = await run.status();
    return v.inFlight.some((l) => l.phase === 'training') && v.inFlight.some((l) => l.phase === 'queued');
  });
  const before = await run.status();
  const trainingNow = before.inFlight.filter((l) => l.phase === 'training').map((l) => l.id);
  await stopRun(env.client, run.tag, false);
  const final = await run.finished;
  await run.ran;
  assert.equal(final.state, 'stopped');
  const records = await readRecords(run.repo, run.tag);
  assert.deepEqual(
    records.slice(before.experimentsDone).map((r) => r.id),
    trainingNow,
    'only what was training when stopped',
  );
  fake.fallback = () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' });
});

test('a proposer that can never succeed ends the run with one line instead of looping all night', async () => {
  const noKnobs = await study('print("---")\nprint("val_bpb: 1.0")\n', (repo) => studyConfig(repo, 'noknobs', {}), 1);
  const ended = await noKnobs.finished;
  await noKnobs.ran;
  assert.equal(ended.state, 'completed');
  assert.equal(ended.reason, 'no UPPER_CASE = number hyperparameters in the editable files');
  assert.equal(
    (await readRecords(noKnobs.repo, noKnobs.tag)).length,
    1,
    'the baseline, and no row per failed proposal',
  );

  fake.script.length = 0;
  fake.fallback = () => ({ content: 'I think you should try a larger learning rate.', tokens: 10 });
  const garbage = await study(
    XY,
    (repo) => studyConfig(repo, 'garbage', { proposer: 'llm', model: 'm', maxProposerFailures: 3 }),
    1,
  );
  const failed = await garbage.finished.then(
    () => assert.fail('the run should fail'),
    (err: Error) => err,
  );
  await garbage.ran;
  assert.match((failed.cause as Error).message, /the proposer failed 3 times in a row \(last: .*\)/);
  const records = await readRecords(garbage.repo, garbage.tag);
  assert.deepEqual(
    records.map((r) => r.status),
    ['keep', 'crash', 'crash', 'crash'],
    records.map((r) => r.reason).join('; '),
  );
  fake.fallback = () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' });
});

test('a crash is shown to the llm for repair at most twice, whatever fails in between', async () => {
  const CRASHY = XY.replace('import time', 'import sys, time\nif X == 3: sys.exit("X = 3 is broken")');
  fake.script.length = 0;
  fake.requests.length = 0;
  llm([edit('try X = 3', 'X = 4', 'X = 3')]);
  fake.fallback = () => ({ content: 'not json at all', tokens: 10 });
  const run = await study(
    CRASHY,
    (repo) =>
      studyConfig(repo, 'repairs', { proposer: 'llm', model: 'm', ahead: 0, maxExperiments: 6, maxProposerFailures: 10 }),
    1,
  );
  await run.finished;
  await run.ran;
  const records: ExperimentRecord[] = await readRecords(run.repo, run.tag);
  const crashed = records.find((r) => r.description === 'try X = 3')!;
  assert.equal(crashed.status, 'crash');
  // A proposal's first request has the system and user messages only; feedback rounds add to them.
  const firstAsks = fake.requests.filter((r: Recorded) => r.body.messages.length === 2);
  const shown = firstAsks.filter((r) => r.body.messages.some((m) => m.content.includes(`crashed: ${crashed.id}`)));
  assert.ok(firstAsks.length >= 4, `${firstAsks.length} proposals asked`);
  assert.equal(shown.length, 2, 'the crash was shown to two proposals, then no more');
  fake.fallback = () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' });
});
