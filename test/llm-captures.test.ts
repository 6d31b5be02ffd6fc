// What a weak local model really sends (Qwen2.5-Coder-1.5B, captured): each answer judged in the context it was
// given, and the whole sequence replayed in order through the fake server as a study of six proposals. The two answers
// that crashed their trainings with a NameError that night are stopped before any training; the history the model
// reads says what really changed and lists the proposer's failures apart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidAnswer, topLevelConstants, validateCandidate } from '../activities/edits';
import { compactHistory } from '../activities/history';
import { evaluateAnswer, proposeWithLlm, type LlmContext } from '../activities/llm';
import type { ExperimentRecord, Proposal, RunConfig } from '../workflows/types';
import { loadCaptures, replies, shownFile, type Capture } from './captures';
import { fakeOpenAI, type FakeOpenAI } from './fake-openai';

const BASELINE_BPB = 2.176625; // the captured night's baseline
const LR_X5_BPB = 2.369347; // what `LEARNING_RATE 0.006 -> 0.03` scored that night
const captures = loadCaptures();
const bestFile = shownFile(captures[0], '# The best version')!;

let fake: FakeOpenAI;
let repo: string;
before(async () => {
  fake = await fakeOpenAI();
  repo = await mkdtemp(join(tmpdir(), 'autoresearch-captures-'));
  await writeFile(join(repo, 'program.md'), captures[0].request.messages[1].content.split('# Results so far')[0]);
});
after(() => fake.close());

const config: RunConfig = {
  tag: 'qwen',
  repo: '',
  proposer: 'llm',
  editable: ['train.py'],
  command: 'python train.py',
  timeoutMs: 60_000,
  budgetSeconds: 30,
  parallel: 1,
  seed: 0,
  minImprovement: 0,
  model: 'qwen2.5-coder-1.5b-instruct',
  llmTimeoutMs: 5_000,
};

/** The answer judged against the files its own prompt showed: usable, or which check refused it. */
async function judge(capture: Capture): Promise<{ outcome: string; reason?: string }> {
  const crashed = shownFile(capture, '# The last experiment crashed');
  const record = { id: 'crashed', description: '', reason: '' } as ExperimentRecord;
  const ctx: LlmContext = {
    config: { ...config, repo },
    best: { commit: 'a377e0f'.padEnd(40, '0'), files: { 'train.py': shownFile(capture, '# The best version')! } },
    crashed: crashed === undefined ? undefined : { record, files: { 'train.py': crashed } },
    records: [],
  };
  try {
    await evaluateAnswer(ctx, capture.answer);
    return { outcome: 'usable' };
  } catch (err) {
    if (!(err instanceof InvalidAnswer)) throw err;
    return { outcome: err.message.includes('(pyflakes)') ? 'pyflakes' : err.kind, reason: err.message.split('\n')[0] };
  }
}

test('the checker stops the captured answers that crashed a training with a NameError, and only those', async () => {
  const judged = await Promise.all(captures.map(async (c) => ({ call: c.call, ...(await judge(c)) })));
  for (const j of judged) console.log(`call ${j.call}: ${j.outcome}${j.reason ? ` — ${j.reason.slice(0, 150)}` : ''}`);
  const stopped = judged.filter((j) => j.outcome === 'pyflakes');
  const passedParse = judged.filter((j) => j.outcome === 'usable' || j.outcome === 'pyflakes');
  console.log(
    `pyflakes stops ${stopped.length} of ${judged.length} captured answers (${Math.round((100 * stopped.length) / judged.length)}%): ` +
      `${stopped.length} of the ${passedParse.length} that the parse check alone let through to a training`,
  );
  assert.deepEqual(
    judged.map((j) => j.outcome),
    ['usable', 'apply', 'pyflakes', 'apply', 'apply', 'apply', 'apply', 'apply', 'apply', 'pyflakes'],
  );
  for (const j of stopped) assert.match(j.reason!, /undefined name 'LEARNING_RATE'/);
});

test('every captured answer aims at a top-level constant, the idea "set" makes a one-line answer', () => {
  const names = new Set(topLevelConstants(bestFile).map((c) => c.name));
  const aiming = captures.filter((c) => {
    const edits = (JSON.parse(c.answer) as { edits: { search: string }[] }).edits;
    return edits.some((e) => names.has(/^\s*([A-Z][A-Z0-9_]*)/.exec(e.search)?.[1] ?? ''));
  });
  console.log(`answers changing a top-level constant: ${aiming.length} of ${captures.length}`);
  assert.equal(aiming.length, captures.length);
});

test('replayed in order as a six-proposal study: nothing the checker rejects is proposed, and the history shows real changes', async () => {
  fake.script.push(...replies(captures));
  fake.fallback = () => ({
    status: 503,
    body: '{"error":{"message":"the captured night is over"}}',
    headers: { 'retry-after-ms': '10' },
  });
  const best = { commit: 'a377e0f'.padEnd(40, '0'), files: { 'train.py': bestFile } };
  const records: ExperimentRecord[] = [record(0, 'baseline', 'c'.repeat(40), 'keep', BASELINE_BPB, 'baseline')];
  const proposals: Proposal[] = [];
  for (let key = 1; key <= 6; key++) {
    const ctx: LlmContext = { config: { ...config, repo }, best, records: [...records], key };
    const proposal = (await new MockActivityEnvironment().run(proposeWithLlm, ctx)) as Proposal;
    proposals.push(proposal);
    if (proposal.ok) {
      await assert.doesNotReject(validateCandidate(best.files, proposal.files), 'a proposal the checker would reject');
      assert.equal(proposal.change, 'LEARNING_RATE 0.006 -> 0.03', 'the only usable captured answer');
      records.push({
        ...record(key, proposal.description, 'd'.repeat(40), 'discard', LR_X5_BPB, 'decided'),
        change: proposal.change,
      });
    } else {
      records.push(
        record(key, `proposer failed: ${proposal.reason}`, null, 'crash', null, `proposer failed: ${proposal.reason}`),
      );
    }
  }
  assert.deepEqual(
    proposals.map((p) => p.ok),
    [true, false, false, false, false, false],
  );
  assert.equal(fake.requests.length, 10 + 2 * 5, 'ten captured answers, then two proposals that meet an outage');
  assert.ok(proposals.every((p) => p.tokens > 0 || !p.ok));
  const failures = proposals.filter((p): p is Extract<Proposal, { ok: false }> => !p.ok);
  assert.match(
    failures[0].reason,
    /^no usable answer in 3 tries \(last: the edit changes nothing: its "replace" is the same as its "search"\)$/,
  );
  assert.equal(failures[4].reason, 'LLM endpoint: 503 after 4 retries (the captured night is over)');

  // What the model read before its second proposal, and what it would read next.
  const second = fake.requests[1].body.messages[1].content;
  assert.match(
    second,
    /\tdiscard\tIncrease the learning rate by 50%: the model might underfit at the new rate\. \[LEARNING_RATE 0\.006 -> 0\.03\]/,
  );
  const history = compactHistory(records);
  console.log(history);
  assert.match(history, /^7 experiments so far: 1 kept, 1 discarded, 0 crashed in training, 5 proposer failures\./);
  assert.match(
    history,
    /Proposer failures \(no usable answer, nothing trained\), newest last:\n- qwen-2: no usable answer in 3 tries/,
  );
  assert.doesNotMatch(history, /\(proposer failed/, "a failure's reason is said once");
  assert.match(
    history,
    /- LEARNING_RATE 0\.006 -> 0\.03 \("Increase the learning rate by 50%: the model might underfit at the new rate\."\): discard 2\.369347/,
  );
});

function record(
  n: number,
  description: string,
  commit: string | null,
  status: ExperimentRecord['status'],
  valBpb: number | null,
  reason: string,
): ExperimentRecord {
  return {
    id: `qwen-${n}`,
    n,
    parent: null,
    commit,
    description,
    status,
    reason,
    valBpb,
    memoryGb: 0,
    metrics: {},
    proposer: n === 0 ? 'baseline' : 'llm',
    tokens: 0,
    startedAt: '',
    finishedAt: '',
    trainingSeconds: 0,
  };
}
