// Keep-if-better: what the workflow does with each finished training command.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { crashReason, decide, judgeRuns, NO_NOISE, sigmaOf, withGroup } from '../workflows/decide';
import type { Best, TrainingResult } from '../workflows/types';

function result(fields: Partial<TrainingResult> = {}): TrainingResult {
  return { exitCode: 0, timedOut: false, metrics: { val_bpb: 1.0, num_steps: 100 }, seconds: 300, logTail: '', worker: 'host-slot0', sandboxed: true, ...fields };
}

const BEST: Best = { experimentId: 'nov27-3', commit: 'a'.repeat(40), valBpb: 1.0 };

describe('decide', () => {
  test('the baseline is kept whatever it scores', () => {
    assert.deepEqual(decide(result({ metrics: { val_bpb: 7.5 } }), null, 0), { status: 'keep', reason: 'baseline', valBpb: 7.5 });
    assert.deepEqual(decide(result({ metrics: { val_bpb: 0.9 } }), null, 0.5), { status: 'keep', reason: 'baseline', valBpb: 0.9 });
  });

  test('a candidate that beats the best is kept, and the reason names the best it beat', () => {
    const d = decide(result({ metrics: { val_bpb: 0.95 } }), BEST, 0);
    assert.equal(d.status, 'keep');
    assert.equal(d.valBpb, 0.95);
    assert.match(d.reason, /1\.000000/);
    assert.match(d.reason, /nov27-3/);
  });

  test('a candidate equal to the best is discarded', () => {
    const d = decide(result({ metrics: { val_bpb: 1.0 } }), BEST, 0);
    assert.equal(d.status, 'discard');
    assert.equal(d.valBpb, 1.0);
    assert.match(d.reason, /not better than 1\.000000 \(nov27-3\)/);
  });

  test('a worse candidate is discarded with its score kept', () => {
    assert.deepEqual(decide(result({ metrics: { val_bpb: 1.2 } }), BEST, 0), {
      status: 'discard',
      reason: 'not better than 1.000000 (nov27-3)',
      valBpb: 1.2,
    });
  });

  test('a candidate must beat the best by more than minImprovement', () => {
    assert.equal(decide(result({ metrics: { val_bpb: 0.995 } }), BEST, 0.01).status, 'discard', 'better, but by less than the margin');
    assert.equal(decide(result({ metrics: { val_bpb: 0.99 } }), BEST, 0.01).status, 'discard', 'better by exactly the margin');
    assert.equal(decide(result({ metrics: { val_bpb: 0.985 } }), BEST, 0.01).status, 'keep', 'better by more than the margin');
    assert.equal(decide(result({ metrics: { val_bpb: 0.995 } }), BEST, 0).status, 'keep', 'no margin: any improvement counts');
  });
});

describe('crashes', () => {
  test('a non-zero exit code is a crash whose reason names the exit code, even with a val_bpb', () => {
    const d = decide(result({ exitCode: 3, metrics: { val_bpb: 0.5 } }), BEST, 0);
    assert.deepEqual(d, { status: 'crash', reason: 'exit code 3', valBpb: null });
  });

  test('a command killed by a signal (no exit code) is a crash', () => {
    const d = decide(result({ exitCode: null, metrics: {} }), BEST, 0);
    assert.equal(d.status, 'crash');
    assert.match(d.reason, /exit code/);
  });

  test('a timeout is a crash whose reason says timeout and how long it ran', () => {
    const d = decide(result({ exitCode: null, timedOut: true, seconds: 299.6, metrics: { val_bpb: 0.5 } }), BEST, 0);
    assert.equal(d.status, 'crash');
    assert.equal(d.valBpb, null);
    assert.equal(d.reason, 'timeout after 300s');
  });

  test('a missing val_bpb is a crash whose reason names val_bpb', () => {
    const d = decide(result({ metrics: { num_steps: 10 } }), null, 0);
    assert.deepEqual(d, { status: 'crash', reason: 'no val_bpb in the summary', valBpb: null });
  });

  test('a non-finite val_bpb is a crash, also for the baseline', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const d = decide(result({ metrics: { val_bpb: bad } }), null, 0);
      assert.equal(d.status, 'crash');
      assert.match(d.reason, /val_bpb is/);
    }
  });

  test('a problem set by the worker is a crash whose reason is the problem, before anything else', () => {
    const problem = 'harness mismatch: the checkout of host-slot0 differs from the run\'s harness';
    const d = decide(result({ problem, exitCode: 0, metrics: { val_bpb: 0.1 } }), BEST, 0);
    assert.deepEqual(d, { status: 'crash', reason: problem, valBpb: null });
    assert.equal(decide(result({ problem, timedOut: true, exitCode: 1 }), null, 0).reason, problem);
  });

  test('crashReason is null exactly when the result can be scored', () => {
    assert.equal(crashReason(result()), null);
    assert.equal(crashReason(result({ metrics: { val_bpb: 0 } })), null, 'zero is a finite score');
    assert.notEqual(crashReason(result({ exitCode: 1 })), null);
  });
});

describe('judgeRuns: keep-if-better above the noise floor', () => {
  const noise = withGroup(NO_NOISE, [1.0, 1.002, 0.998]); // σ = 0.002: the band is 2σ = 0.004
  const runs = (...scores: number[]) => scores.map((val_bpb) => result({ metrics: { val_bpb } }));

  test('σ is the pooled standard deviation of the repeated runs', () => {
    assert.ok(Math.abs(sigmaOf(noise)! - 0.002) < 1e-12);
    assert.equal(sigmaOf(NO_NOISE), null);
    assert.equal(sigmaOf(withGroup(NO_NOISE, [1.0])), null, 'one run says nothing about noise');
  });

  test('without a noise estimate it is plain keep-if-better', () => {
    assert.equal(judgeRuns(runs(0.9999), BEST, 0, NO_NOISE).status, 'keep');
  });

  test('a first run that beats the best by less than three bands is confirmed by another run', () => {
    const j = judgeRuns(runs(0.995), BEST, 0, noise);
    assert.equal(j.status, 'confirm');
    assert.match(j.reason, /confirming$/);
  });

  test('a clear win is kept at once, and a clear loss discarded at once', () => {
    assert.equal(judgeRuns(runs(0.98), BEST, 0, noise).status, 'keep');
    assert.equal(judgeRuns(runs(1.001), BEST, 0, noise).status, 'discard');
  });

  test('after confirmation the mean of the runs must beat the best by the band', () => {
    const kept = judgeRuns(runs(0.995, 0.993), BEST, 0, noise);
    assert.equal(kept.status, 'keep');
    assert.equal(kept.valBpb, 0.994);
    assert.match(kept.reason, /confirmed over 2 runs/);
    const lost = judgeRuns(runs(0.995, 0.9995), BEST, 0, noise);
    assert.equal(lost.status, 'discard');
    assert.match(lost.reason, /within the noise/);
  });

  test('--min-improvement widens the band; --confirm-z 0 turns confirmation off', () => {
    assert.equal(judgeRuns(runs(0.995), BEST, 0.01, noise).status, 'discard');
    assert.equal(judgeRuns(runs(0.999), BEST, 0, noise, 0).status, 'keep');
  });

  test('a crash in any run is a crash', () => {
    assert.equal(judgeRuns([...runs(0.99), result({ exitCode: 1 })], BEST, 0, noise).status, 'crash');
  });
});
