// What the model reads about the night: computed changes beside the claims, ideas grouped by what they changed,
// proposer failures apart with their reason once, diverged scores readable, all within a budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compactHistory, historyScore, HISTORY_BUDGET_CHARS } from '../activities/history';
import type { ExperimentRecord } from '../workflows/types';

function record(
  n: number,
  description: string,
  status: ExperimentRecord['status'],
  valBpb: number | null,
  extra: Partial<ExperimentRecord> = {},
): ExperimentRecord {
  return {
    id: `t-${n}`,
    n,
    parent: null,
    commit: 'c'.repeat(40),
    description,
    status,
    reason: status === 'crash' ? 'exit code 1' : 'decided',
    valBpb,
    memoryGb: 0,
    metrics: {},
    proposer: n === 0 ? 'baseline' : 'llm',
    tokens: 100,
    startedAt: '',
    finishedAt: '',
    trainingSeconds: 1,
    ...extra,
  };
}

const failure = (n: number, reason: string) =>
  record(n, `proposer failed: ${reason}`, 'crash', null, { commit: null, reason: `proposer failed: ${reason}` });

test('each experiment shows what really changed beside what the model said it changed', () => {
  const history = compactHistory([
    record(0, 'baseline', 'keep', 2.176625),
    record(1, 'Increase the learning rate by 50%', 'discard', 2.369347, { change: 'LEARNING_RATE 0.006 -> 0.03' }),
  ]);
  assert.match(history, /t-1\t2\.369347\tdiscard\tIncrease the learning rate by 50% \[LEARNING_RATE 0\.006 -> 0\.03\]/);
  assert.match(history, /- LEARNING_RATE 0\.006 -> 0\.03 \("Increase the learning rate by 50%"\): discard 2\.369347/);
});

test('tried ideas are grouped by their change, not by their wording', () => {
  const history = compactHistory([
    record(0, 'baseline', 'keep', 2.0),
    record(1, 'raise the learning rate', 'discard', 2.3, { change: 'LEARNING_RATE 0.006 -> 0.03' }),
    record(2, 'make the model learn faster', 'discard', 2.31, { change: 'LEARNING_RATE 0.006 -> 0.03' }),
    record(3, 'raise the learning rate', 'keep', 1.9, { change: 'LEARNING_RATE 0.006 -> 0.009' }),
  ]);
  const ideas = history.split('\n').filter((l) => l.startsWith('- LEARNING_RATE'));
  assert.deepEqual(ideas, [
    '- LEARNING_RATE 0.006 -> 0.009 ("raise the learning rate"): keep 1.900000',
    '- LEARNING_RATE 0.006 -> 0.03 ("make the model learn faster"): discard 2.310000, discard 2.300000 — tried 2 times',
  ]);
});

test('proposer failures are listed apart from the ideas, each reason said once', () => {
  const history = compactHistory([
    record(0, 'baseline', 'keep', 2.0),
    record(1, 'wider', 'discard', 2.1, { change: 'HIDDEN 256 -> 512' }),
    failure(2, 'no usable answer in 3 tries (last: the edits change nothing)'),
    failure(3, 'LLM endpoint: 500 after 4 retries (overloaded)'),
  ]);
  assert.match(history, /^4 experiments so far: 1 kept, 1 discarded, 0 crashed in training, 2 proposer failures\./);
  assert.match(
    history,
    /Proposer failures \(no usable answer, nothing trained\), newest last:\n- t-2: no usable answer in 3 tries \(last: the edits change nothing\)\n- t-3: LLM endpoint: 500 after 4 retries \(overloaded\)\n/,
  );
  assert.equal(history.split('the edits change nothing').length - 1, 1, 'the reason appears once');
  assert.doesNotMatch(history, /t-2\t/, 'a failure is not a row of the results');
  assert.doesNotMatch(history.split('Every distinct change tried')[1], /proposer failed/);
});

test('a training crash keeps its reason beside its description', () => {
  const history = compactHistory([
    record(0, 'baseline', 'keep', 2.0),
    record(1, 'multiply LR', 'crash', null, { change: 'train.py +1 -1 lines' }),
  ]);
  assert.match(history, /t-1\t-\tcrash\tmultiply LR \[train\.py \+1 -1 lines\] \(exit code 1\)/);
  assert.match(history, /- train\.py \+1 -1 lines \("multiply LR"\): crash \(exit code 1\)/);
});

test('a diverged score reads as such, in exponent form, never as a 34-digit number', () => {
  const ordinary = [2.2, 2.18, 2.25, 2.17].map((v, i) =>
    record(3 + i, `ordinary ${i}`, 'discard', v, { change: `X 1 -> ${i + 2}` }),
  );
  const history = compactHistory([
    record(0, 'baseline', 'keep', 2.176625),
    record(1, 'BETA2 0.99 -> 0.495', 'discard', 2.245927795715333e33, { change: 'BETA2 0.99 -> 0.495' }),
    record(2, 'LEARNING_RATE 0.006 -> 6', 'discard', 1e300, { change: 'LEARNING_RATE 0.006 -> 6' }),
    ...ordinary,
  ]);
  assert.match(history, /t-1\tdiverged: 2\.2e33\tdiscard/);
  assert.match(history, /- BETA2 0\.99 -> 0\.495 \("BETA2 0\.99 -> 0\.495"\): discard diverged: 2\.2e33/);
  assert.match(history, /t-2\tdiverged: 1e300\tdiscard/);
  assert.match(history, /t-3\t2\.200000\tdiscard/);
  assert.match(history, /t-5\t2\.250000\tdiscard/);
  assert.doesNotMatch(history, /\d{20}/);
});

test('scores: six decimals, exponent form past a million, diverged above the threshold given', () => {
  assert.equal(historyScore(null), '-');
  assert.equal(historyScore(0.000001), '0.000001');
  assert.equal(historyScore(3_500_000), '3.5e6');
  assert.equal(historyScore(9.5, 3), 'diverged: 9.500000');
  assert.equal(historyScore(2.9, 3), '2.900000');
});

test('the history stays within its budget after 200 experiments, keeping baseline, best and every idea it can', () => {
  const records = [record(0, 'baseline', 'keep', 2.0)];
  for (let n = 1; n <= 200; n++) {
    const status = n % 10 === 0 ? 'keep' : n % 7 === 0 ? 'crash' : 'discard';
    records.push(
      record(
        n,
        `idea number ${n}: change ${'something '.repeat(n % 5)}in the model`,
        status,
        status === 'crash' ? null : 2 - n / 1000,
      ),
    );
  }
  const history = compactHistory(records);
  assert.ok(history.length <= HISTORY_BUDGET_CHARS, `${history.length} chars`);
  assert.match(history, /^201 experiments so far: 21 kept, 154 discarded, 26 crashed in training\./);
  assert.match(history, /baseline: val_bpb 2\.000000/);
  assert.match(history, /best: val_bpb 1\.800000 \(t-200: idea number 200/);
  assert.match(history, /t-199\t1\.801000\tdiscard/);
  const listed = history.split('\n').filter((l) => l.startsWith('- "idea number')).length;
  const omitted = Number(/… and (\d+) older changes/.exec(history)?.[1] ?? 0);
  assert.equal(listed + omitted, 200, 'every distinct idea is listed or counted');
  assert.ok(listed >= 100, `${listed} ideas listed`);
});
