// The LLM proposer against a real local chat-completions server: good answers become proposals,
// every bad answer is fed back with its reason (a bounded number of times), outages are retried,
// refused credentials stop the run.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactHistory, HISTORY_BUDGET_CHARS } from '../activities/history';
import { proposeWithLlm, type LlmContext } from '../activities/llm';
import type { ExperimentRecord, Proposal, RunConfig } from '../workflows/types';
import { answer, fakeOpenAI, type FakeOpenAI } from './fake-openai';

const TRAIN = 'LR = 0.1  # learning rate\nSTEPS = 10  # optimizer steps\n\n\ndef train():\n    return LR * STEPS\n';
const KEY = 'sk-test-do-not-leak-4242';
const GOOD = answer('halve LR: the loss is noisy', [{ path: 'train.py', search: 'LR = 0.1', replace: 'LR = 0.05' }]);

let fake: FakeOpenAI;
let repo: string;
before(async () => {
  fake = await fakeOpenAI(KEY);
  repo = await mkdtemp(join(tmpdir(), 'autoresearch-llm-'));
  await writeFile(join(repo, 'program.md'), '# program\nTry smaller learning rates first.\n');
});
after(() => fake.close());
afterEach(() => {
  fake.requests.length = 0;
  fake.script.length = 0;
});

function context(extra: Partial<LlmContext> = {}, config: Partial<RunConfig> = {}): LlmContext {
  return {
    config: {
      tag: 't', repo, proposer: 'llm', editable: ['train.py'], command: 'python train.py', timeoutMs: 60_000, budgetSeconds: 30,
      parallel: 1, seed: 0, minImprovement: 0, model: 'test-model', llmTimeoutMs: 5_000, ...config,
    },
    best: { commit: 'a'.repeat(40), files: { 'train.py': TRAIN } },
    records: [],
    ...extra,
  };
}

const propose = (ctx = context()) => new MockActivityEnvironment().run(proposeWithLlm, ctx) as Promise<Proposal>;
const userMessages = (i: number) => fake.requests[i].body.messages.filter((m) => m.role === 'user').map((m) => m.content);

describe('a good answer', () => {
  test('becomes a proposal with its description, the edited file and the tokens used', async () => {
    fake.script.push({ content: GOOD, tokens: 321 });
    const proposal = await propose();
    assert.deepEqual(proposal, { ok: true, description: 'halve LR: the loss is noisy', files: { 'train.py': TRAIN.replace('LR = 0.1', 'LR = 0.05') }, tokens: 321, fixes: undefined });
  });

  test('is asked for with the program, the best files, the results and a json_schema response format', async () => {
    fake.script.push({ content: GOOD });
    await propose(context({ records: [record(0, 'baseline', 'keep', 1.5)] }));
    const { body, headers } = fake.requests[0];
    assert.equal(body.model, 'test-model');
    assert.equal(body.response_format?.type, 'json_schema');
    assert.equal(headers.authorization, `Bearer ${KEY}`);
    const prompt = userMessages(0)[0];
    assert.match(prompt, /Try smaller learning rates first\./);
    assert.match(prompt, /LR = 0\.1  # learning rate/);
    assert.match(prompt, /baseline: val_bpb 1\.500000/);
  });

  test('is accepted inside a fenced block, for servers that ignore response_format', async () => {
    fake.script.push({ content: `Sure! Here is my idea:\n\n\`\`\`json\n${GOOD}\n\`\`\`\nGood luck.` });
    assert.equal((await propose()).ok, true);
  });

  test('is asked for again as plain text when the server rejects response_format', async () => {
    fake.script.push({ status: 400, body: '{"error":{"message":"response_format json_schema is not supported"}}' }, { content: GOOD });
    assert.equal((await propose()).ok, true);
    assert.equal(fake.requests[1].body.response_format, undefined);
  });

  test('may rewrite the whole file with an empty search', async () => {
    fake.script.push({ content: answer('rewrite', [{ path: 'train.py', search: '', replace: 'LR = 0.2\n' }]) });
    const proposal = await propose();
    assert.equal(proposal.ok && proposal.files['train.py'], 'LR = 0.2\n');
  });
});

describe('a bad answer goes back to the model with the reason, a bounded number of times', () => {
  const cases: [string, string, RegExp][] = [
    ['non-JSON', 'I think we should lower the learning rate.', /not a JSON object/],
    ['an unknown path', answer('x', [{ path: 'model.py', search: 'LR', replace: 'X' }]), /"model.py" is not an editable file/],
    ['a path outside the repo', answer('x', [{ path: '../train.py', search: 'LR = 0.1', replace: 'LR = 1' }]), /"..\/train.py" is not an editable file/],
    ['an absent search text', answer('x', [{ path: 'train.py', search: 'LR = 0.3', replace: 'LR = 1' }]), /does not occur in the file/],
    ['an ambiguous search text', answer('x', [{ path: 'train.py', search: '\n\n', replace: '\n' }]), /occurs 2 times/],
    ['code that does not parse', answer('x', [{ path: 'train.py', search: 'LR = 0.1', replace: 'LR = (0.1' }]), /train.py does not parse as Python/],
    ['empty edits', answer('nothing', []), /"edits" is empty/],
  ];
  for (const [name, bad, reason] of cases) {
    test(`${name}: fed back, then the corrected answer is used`, async () => {
      fake.script.push({ content: bad }, { content: GOOD });
      const proposal = await propose();
      assert.equal(proposal.ok, true);
      assert.equal(fake.requests.length, 2);
      const second = fake.requests[1].body.messages;
      assert.equal(second.at(-2)!.role, 'assistant');
      assert.equal(second.at(-2)!.content, bad);
      assert.match(second.at(-1)!.content, reason);
    });
  }

  test('three bad answers in a row make a proposer failure with the last reason, not an endless loop', async () => {
    fake.script.push({ content: 'no' }, { content: 'still no' }, { content: answer('x', [{ path: 'train.py', search: 'nope', replace: '' }]), tokens: 50 });
    const proposal = await propose();
    assert.equal(fake.requests.length, 3);
    assert.equal(proposal.ok, false);
    assert.match(!proposal.ok ? proposal.reason : '', /^no usable answer in 3 tries \(last: the search text of an edit to train.py does not occur/);
    assert.equal(proposal.tokens, 250);
  });
});

describe('a bad night at the endpoint', () => {
  test('429 with retry-after is retried after the time asked', async () => {
    fake.script.push({ status: 429, headers: { 'retry-after': '2' }, body: '{"error":{"message":"slow down"}}' }, { content: GOOD });
    assert.equal((await propose()).ok, true);
    assert.ok(fake.requests[1].at - fake.requests[0].at >= 1_900, `waited ${fake.requests[1].at - fake.requests[0].at} ms`);
  });

  test('500 is retried', async () => {
    fake.script.push({ status: 500, body: '{"error":{"message":"oops"}}' }, { status: 503, body: 'upstream down' }, { content: GOOD });
    assert.equal((await propose()).ok, true);
    assert.equal(fake.requests.length, 3);
  });

  test('a hanging response is abandoned at the call timeout and retried', async () => {
    fake.script.push({ hang: true }, { content: GOOD });
    const started = Date.now();
    assert.equal((await propose(context({}, { llmTimeoutMs: 700 }))).ok, true);
    assert.ok(Date.now() - started < 10_000);
    assert.equal(fake.requests.length, 2);
  });

  test('401 stops with one clear line and is not retried', async () => {
    fake.script.push({ status: 401, body: '{"error":{"message":"Incorrect API key provided"}}' });
    await assert.rejects(propose(), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.nonRetryable, true);
      assert.equal(err.type, 'LlmRefused');
      assert.match(err.message, /the LLM endpoint refused the credentials \(401\): check OPENAI_API_KEY/);
      assert.ok(!err.message.includes(KEY));
      return true;
    });
    assert.equal(fake.requests.length, 1);
  });
});

describe('after a crash', () => {
  test('the model sees the log tail and may fix the crashed candidate instead of starting from the best', async () => {
    const crashedFiles = { 'train.py': TRAIN.replace('return LR * STEPS', 'return LR * STEPZ') };
    const crashed = { ...record(3, 'more steps', 'crash', null), reason: 'exit code 1', logTail: "NameError: name 'STEPZ' is not defined" };
    fake.script.push({ content: answer('fix the typo in STEPS', [{ path: 'train.py', search: 'STEPZ', replace: 'STEPS' }], 'crashed') });
    const proposal = await propose(context({ crashed: { record: crashed, files: crashedFiles } }));
    assert.match(userMessages(0)[0], /NameError: name 'STEPZ' is not defined/);
    assert.match(userMessages(0)[0], /The last experiment crashed: t-3 "more steps" \(exit code 1\)/);
    assert.equal(proposal.ok && proposal.fixes, 't-3');
    assert.equal(proposal.ok && proposal.files['train.py'], TRAIN);
  });
});

function record(n: number, description: string, status: ExperimentRecord['status'], valBpb: number | null): ExperimentRecord {
  return {
    id: `t-${n}`, n, parent: null, commit: 'c'.repeat(40), description, status, reason: status === 'crash' ? 'exit code 1' : 'decided',
    valBpb, memoryGb: 0, metrics: {}, proposer: n === 0 ? 'baseline' : 'llm', tokens: 100, startedAt: '', finishedAt: '', trainingSeconds: 1,
  };
}

test('the history the model sees stays within its budget after 200 experiments, keeping baseline, best and every idea it can', () => {
  const records = [record(0, 'baseline', 'keep', 2.0)];
  for (let n = 1; n <= 200; n++) {
    const status = n % 10 === 0 ? 'keep' : n % 7 === 0 ? 'crash' : 'discard';
    records.push(record(n, `idea number ${n}: change ${'something '.repeat(n % 5)}in the model`, status, status === 'crash' ? null : 2 - n / 1000));
  }
  const history = compactHistory(records);
  assert.ok(history.length <= HISTORY_BUDGET_CHARS, `${history.length} chars`);
  assert.match(history, /^201 experiments so far: 21 kept, 154 discarded, 26 crashed\./);
  assert.match(history, /baseline: val_bpb 2\.000000/);
  assert.match(history, /best: val_bpb 1\.800000 \(t-200: idea number 200/);
  assert.match(history, /t-199\t1\.801000\tdiscard/);
  const listed = history.split('\n').filter((l) => l.startsWith('- idea number')).length;
  const omitted = Number(/… and (\d+) older ideas/.exec(history)?.[1] ?? 0);
  assert.equal(listed + omitted, 200, 'every distinct idea is listed or counted');
  assert.ok(listed >= 100, `${listed} ideas listed`);
});
