// A whole study with --proposer llm against a local OpenAI-compatible server that rate-limits,
// fails and talks garbage between good answers: the night still completes, the model's edits are
// committed with its descriptions, the human's mid-run edit to program.md reaches the model, and
// the API key appears nowhere — not in the workflow history, not in the training's environment.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRecords, resultsDir } from '../activities/results';
import { fetchStatus } from '../scripts/status';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { answer, fakeOpenAI, type FakeOpenAI, type Recorded } from './fake-openai';
import { closeDevServer, devServer, gitIn, makeRepo, runWorkers, waitFor } from './helpers';

const KEY = 'sk-test-never-in-history-9c1e';
// The training reports whether any OpenAI variable reached it, as a metric.
const TRAIN = `LR = 0.1  # learning rate
import os
leaked = int(any(k.startswith("OPENAI") for k in os.environ))
print("---")
print(f"val_bpb:          {1 + LR:.6f}")
print(f"secret_visible:   {leaked}")
`;

/** A model that halves LR every time it is asked, reading the current value from the prompt. */
function halveLr(request: Recorded) {
  const prompt = request.body.messages.find((m) => m.role === 'user')!.content;
  const best = /The best version[\s\S]*?LR = ([\d.e-]+)/.exec(prompt)![1];
  const next = String(Number(best) / 2);
  return { content: answer(`halve LR to ${next}`, [{ path: 'train.py', search: `LR = ${best}`, replace: `LR = ${next}` }]), tokens: 200 };
}

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
before(async () => {
  env = await devServer();
  fake = await fakeOpenAI(KEY);
});
after(async () => {
  await fake.close();
  await closeDevServer(env);
});

async function study(tag: string, extra: Partial<RunConfig>) {
  const repo = await makeRepo({ 'train.py': TRAIN });
  const config: RunConfig = {
    tag, repo, proposer: 'llm', model: 'test-model', llmTimeoutMs: 1_000, editable: ['train.py'], command: 'python3 train.py',
    timeoutMs: 20_000, budgetSeconds: 1, parallel: 1, ahead: 0, seed: 0, minImprovement: 0, ...extra, // one proposal at a time: the script's order is the proposals' order
  };
  await startRun(async () => env.client, config);
  const handle = env.client.workflow.getHandle(workflowIdFor(tag));
  const finished = handle.result() as Promise<StatusView>;
  const ran = runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, finished);
  return { repo, tag, handle, finished, ran };
}

test('a study runs to completion through rate limits and garbage, committing the model\'s edits with its descriptions', async () => {
  fake.script.length = 0;
  fake.requests.length = 0;
  fake.fallback = halveLr;
  fake.script.push(
    { status: 429, headers: { 'retry-after': '1' }, body: '{"error":{"message":"rate limited"}}' },
    halveLr, // experiment 1
    { content: 'Let me think about this... lower the LR!' }, // garbage, fed back
    halveLr, // experiment 2
    { status: 500, body: '{"error":{"message":"overloaded"}}' },
    { hang: true },
  );
  const run = await study('llm', { maxExperiments: 5 });
  // The human steers mid-run: the next proposal must carry the new instruction.
  await waitFor('experiment 2 done', async () => (await fetchStatus(env.client, 'llm')).experimentsDone >= 2, 60_000);
  await appendFile(join(run.repo, 'program.md'), '\nNEW INSTRUCTION: try a cosine schedule.\n');
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, 5);
  const records = (await readRecords(run.repo, run.tag));
  // With no proposal ahead (--ahead 0) a slot that waits on the model reruns the best meanwhile: a sample, not a keep.
  const reruns = records.filter((r) => r.description.startsWith('rerun of the best'));
  for (const r of reruns) assert.equal(r.status, 'discard', r.reason);
  const proposed = records.slice(1).filter((r) => !reruns.includes(r));
  assert.ok(proposed.length >= 2, `${proposed.length} proposals trained`);
  assert.ok(view.tokensUsed >= proposed.length * 200);
  assert.deepEqual(records.map((r) => r.status).filter((st, i) => !reruns.includes(records[i])), ['keep', ...proposed.map(() => 'keep')]);
  assert.deepEqual(proposed.map((r) => r.description), proposed.map((_, i) => `halve LR to ${0.1 / 2 ** (i + 1)}`));
  for (const r of proposed) {
    assert.equal(r.proposer, 'llm');
    assert.ok(r.tokens >= 200);
    assert.equal(gitIn(run.repo, 'log', '-1', '--format=%s', r.commit!), r.description);
  }
  for (const r of records) assert.equal(r.metrics.secret_visible, 0, `${r.id}: the training saw no OpenAI variable`);
  assert.equal(gitIn(run.repo, 'show', `autoresearch/llm:train.py`).split('\n')[0], `LR = ${0.1 / 2 ** proposed.length}  # learning rate`);

  const sawInstruction = fake.requests.map((r) => r.body.messages.some((m) => m.content.includes('NEW INSTRUCTION: try a cosine schedule.')));
  assert.ok(sawInstruction.includes(true), 'the edited program.md reached a later request');
  assert.equal(sawInstruction[0], false);

  // Payload data is base64 (or bytes): decode it, so a key anywhere in any payload would show.
  const decode = (key: string, v: unknown) =>
    v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v;
  const history = JSON.stringify(await run.handle.fetchHistory(), decode);
  assert.match(history, /halve LR to 0\.05/, 'payloads are readable in this dump');
  assert.ok(history.length > 1000);
  assert.ok(!history.includes(KEY), 'the API key is not in the workflow history');
});


test('a refused API key stops the run with one clear line, after recording the experiment', async () => {
  fake.script.length = 0;
  fake.fallback = () => ({ status: 401, body: '{"error":{"message":"Incorrect API key provided"}}' });
  const run = await study('refused', { maxExperiments: 5 });
  await assert.rejects(run.finished, (err: Error) => {
    assert.match((err.cause as Error).message, /the LLM endpoint refused the credentials \(401\): check OPENAI_API_KEY/);
    return true;
  });
  await run.ran;
  const status = await fetchStatus(env.client, 'refused');
  assert.equal(status.state, 'failed');
  assert.match(status.reason!, /refused the credentials \(401\)/);
  const rows = (await readFile(join(resultsDir(run.repo, 'refused'), 'results.tsv'), 'utf8')).trim().split('\n').slice(1);
  assert.equal(rows.length, 2, 'the baseline and the refused proposal');
  assert.match(rows[1], /^0000000\t0\.000000\t0\.0\tcrash\tproposer failed: .*401/);
});

test('--max-tokens-total ends the night gracefully once the budget is spent', async () => {
  fake.script.length = 0;
  fake.fallback = halveLr; // 200 tokens a proposal
  const run = await study('budget', { maxTokensTotal: 2_500 });
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed');
  assert.match(view.reason!, /token budget/);
  assert.ok(view.tokensUsed <= 2_500 && view.tokensUsed >= 1_000, `${view.tokensUsed} tokens used`);
  // A slot that waited on the model may have rerun the best meanwhile: a row, not a proposal.
  const reruns = (await readRecords(run.repo, run.tag)).filter((r) => r.description.startsWith('rerun of the best')).length;
  assert.equal(view.experimentsDone, 1 + reruns + view.tokensUsed / 200, 'every proposal paid for was trained');
});

test('after a crash the next proposal sees its log tail and may repair it; repairs in a row are bounded', async () => {
  fake.script.length = 0;
  fake.requests.length = 0;
  const broken = answer('use a schedule', [{ path: 'train.py', search: 'LR = 0.1', replace: 'LR = 0.1\nraise RuntimeError("schedule not defined")' }]);
  const stillBroken = answer('repair the schedule', [{ path: 'train.py', search: 'RuntimeError("schedule not defined")', replace: 'RuntimeError("schedule still broken")' }], 'crashed');
  const brokenAgain = answer('repair the schedule again', [{ path: 'train.py', search: 'schedule still broken', replace: 'schedule broken again' }], 'crashed');
  fake.script.push({ content: broken }, { content: stillBroken }, { content: brokenAgain });
  fake.fallback = halveLr;
  const run = await study('repair', { maxExperiments: 5 });
  const view = await run.finished;
  await run.ran;
  assert.equal(view.state, 'completed');
  const records = (await readRecords(run.repo, run.tag));
  assert.deepEqual(records.map((r) => r.status), ['keep', 'crash', 'crash', 'crash', 'keep']);
  assert.equal(records[2].fixes, 'repair-1');
  assert.equal(records[3].fixes, 'repair-2');
  assert.match(fake.requests[1].body.messages[1].content, /The last experiment crashed: repair-1 "use a schedule" \(exit code 1\)[\s\S]*RuntimeError: schedule not defined/);
  // Two repairs in a row is the limit: the fourth proposal starts again from the best.
  assert.doesNotMatch(fake.requests[3].body.messages[1].content, /The last experiment crashed/);
  assert.equal(records[4].description, 'halve LR to 0.05');
});
