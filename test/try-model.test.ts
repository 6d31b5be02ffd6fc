// `autoresearch try-model`, run as a user would, against the local fake server: replaying the captured weak model
// it prints the figures of that night and calls the model too weak; a model that answers well is called good;
// every mistake is one line and exit code 2.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCaptures, replies } from './captures';
import { answer, fakeOpenAI, type FakeOpenAI, type Recorded } from './fake-openai';
import { cli, makeRepo } from './helpers';

const TRAIN = 'LR = 0.1  # learning rate\nSTEPS = 10  # optimizer steps\n\n\ndef train():\n    return LR * STEPS\n';
const scratchDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('autoresearch-try-model-'));

let fake: FakeOpenAI;
before(async () => {
  fake = await fakeOpenAI();
});
after(() => fake.close());
afterEach(() => {
  fake.requests.length = 0;
  fake.script.length = 0;
});

test('on the tiny target, the captured weak model gets its figures and the verdict "too weak for a night"', async () => {
  const before = scratchDirs();
  fake.script.push(...replies(loadCaptures()));
  const { code, stdout, stderr } = await cli(
    ['try-model', '--model', 'qwen2.5-coder-1.5b-instruct', '--experiments', '4'],
    {},
    120_000,
  );
  console.log(stdout);
  assert.equal(code, 0, stderr);
  assert.equal(fake.requests.length, 10);
  assert.ok(fake.requests.every((r) => r.body.model === 'qwen2.5-coder-1.5b-instruct'));
  assert.match(stdout, /^checker: +pyflakes /m);
  assert.match(
    stdout,
    /^proposal 1: usable \(1 answer, [\d.]+ s, 3,268 tokens\): LEARNING_RATE 0\.006 -> 0\.03 — "Increase the learning rate by 50%/m,
  );
  assert.match(stdout, /^proposal 2: failed \(3 answers, [\d.]+ s, [\d,]+ tokens\): no usable answer in 3 tries/m);
  assert.match(stdout, /^parse rate: +10% \(1 of 10 answers gave a usable proposal\)$/m);
  assert.match(stdout, /^crash rate: +10% \(1 of 10 answers held code that cannot run: the checker stopped them\)$/m);
  assert.match(stdout, /^proposals: +1 of 4 usable$/m);
  assert.match(stdout, /^latency: +median [\d.]+ s, slowest [\d.]+ s per answer; first token after at most [\d.]+ s$/m);
  assert.match(stdout, /^tokens: +[\d,]+ per proposal \(mean\)$/m);
  assert.match(stdout, /^verdict: +too weak for a night \(good: every proposal usable/m);
  assert.deepEqual(scratchDirs(), before, 'the scratch copy is removed');
});

test('a model that answers well is "good", each proposal told what the earlier ones proposed', async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  let asked = 0;
  fake.fallback = (_: Recorded) => ({
    content: answer(`LR try ${++asked}`, [], 'best', { LR: 0.1 / (asked + 1) }),
    tokens: 500,
  });
  const { code, stdout, stderr } = await cli([
    'try-model',
    '--model',
    'm',
    '--experiments',
    '2',
    '--repo',
    repo,
    '--temperature',
    '0.3',
  ]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^proposal 1: usable \(1 answer, [\d.]+ s, 500 tokens\): LR 0\.1 -> 0\.05 — "LR try 1"$/m);
  assert.match(stdout, /^proposal 2: usable .*: LR 0\.1 -> 0\.03333333333333333 — "LR try 2"$/m);
  assert.match(stdout, /^verdict: +good /m);
  assert.match(
    fake.requests[1].body.messages[1].content,
    /# In flight right now — do not duplicate these\n\n- LR try 1/,
  );
  assert.equal(fake.requests[0].body.temperature, 0.3);
});

test('a first token slower than half the silence limit brings advice on --llm-timeout', async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  fake.script.push({ content: answer('halve LR', [], 'best', { LR: 0.05 }), chunkDelayMs: 700, chunkChars: 1_000 });
  const { code, stdout, stderr } = await cli([
    'try-model',
    '--model',
    'm',
    '--experiments',
    '1',
    '--repo',
    repo,
    '--llm-timeout',
    '1s',
  ]);
  assert.equal(code, 0, stderr);
  assert.match(
    stdout,
    /^warning: +the slowest first token came after 0\.\d s: start the night with --llm-timeout 1m or more$/m,
  );
});

test('mistakes are one line and exit code 2', async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  const notGit = await mkdtemp(join(tmpdir(), 'autoresearch-not-git-'));
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ['try-model'],
      { AUTORESEARCH_MODEL: '' },
      /^autoresearch: try-model: name the model with --model NAME \(or AUTORESEARCH_MODEL\)$/,
    ],
    [
      ['try-model', '--model', 'm'],
      { OPENAI_BASE_URL: '', OPENAI_API_KEY: '' },
      /^autoresearch: try-model needs OPENAI_BASE_URL .* or OPENAI_API_KEY \(OpenAI\)$/,
    ],
    [
      ['try-model', '--model', 'm', '--experiments', '0'],
      {},
      /^autoresearch: --experiments: "0" is not a whole number ≥ 1$/,
    ],
    [['try-model', '--model', 'm', '--repo', notGit], {}, /^autoresearch: try-model: .* is not a git repository$/],
    [
      ['try-model', '--model', 'm', '--temperature', 'hot'],
      {},
      /^autoresearch: --temperature: "hot" is not a number from 0 to 2$/,
    ],
  ];
  for (const [args, env, line] of cases) {
    const { code, stderr } = await cli(args, env);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.match(stderr.trim(), line);
  }
  fake.script.push({ status: 401, body: '{"error":{"message":"Incorrect API key provided"}}' });
  const refused = await cli(['try-model', '--model', 'm', '--repo', repo]);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr.trim(),
    /^autoresearch: try-model: the LLM endpoint refused the credentials \(401\): check OPENAI_API_KEY$/,
  );
});
