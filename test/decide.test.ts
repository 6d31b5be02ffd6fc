// Keep-if-better: what the workflow does with each finished training command.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { crashReason, decide, falseKeepOf, judgeRuns, judgeSequential, NO_NOISE, sigmaOf, withGroup, type Noise } from '../workflows/decide';
import { difference, holm, sigmaInterval, t975, tAsZ, upperTail, welchP, zFor } from '../workflows/stats';
import { CONTEXTS, RULES, nights, rates } from './decision-sim';
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

describe('quantiles: from stdlib, against published tables', () => {
  test("Student's t at 0.975 (any degrees of freedom, Welch's fractional ones too) and the normal's", () => {
    for (const [dof, t] of [[1, 12.706], [2, 4.303], [5, 2.571], [10, 2.228], [30, 2.042], [120, 1.98], [Infinity, 1.96]]) {
      assert.ok(Math.abs(t975(dof) - t) < 5e-4, `t(0.975, ${dof}) = ${t975(dof)}, the table says ${t}`);
    }
    assert.ok(t975(4.5) < 2.776 && t975(4.5) > 2.571, 'fractional degrees of freedom lie between their neighbours');
    assert.equal(t975(0), Infinity);
    assert.ok(Math.abs(zFor(0.01) - 2.3263) < 1e-4 && Math.abs(zFor(0.025) - 1.96) < 1e-3);
    assert.ok(Math.abs(upperTail(2) - 0.02275) < 1e-5);
  });

  test('a t score maps to the normal score with the same tail: few degrees of freedom, a smaller z', () => {
    assert.ok(Math.abs(tAsZ(4.303, 2) - 1.96) < 1e-3, 't(0.975, 2) = 4.303 has the tail of z = 1.96');
    assert.ok(Math.abs(tAsZ(2.228, 10) - 1.96) < 1e-3);
    assert.ok(tAsZ(3, 2) < tAsZ(3, 30));
  });

  test("σ's 95% interval from the chi-square (10 dof: 0.699σ to 1.755σ)", () => {
    const { low, high } = sigmaInterval(1, 10);
    assert.ok(Math.abs(low - 0.6987) < 1e-3 && Math.abs(high - 1.7549) < 1e-3, `${low} ${high}`);
    assert.deepEqual(sigmaInterval(1, 0), { low: 0, high: Infinity });
  });

  test("Welch's difference uses its exact (fractional) degrees of freedom", () => {
    const a = [1.0, 1.1, 0.9, 1.05];
    const b = [2.0, 2.5, 1.5, 2.2, 1.8, 2.4];
    const d = difference(a, b);
    const variance = (xs: number[]) => xs.reduce((sum, x) => sum + (x - xs.reduce((p, q) => p + q) / xs.length) ** 2, 0) / (xs.length - 1);
    const va = variance(a) / a.length;
    const vb = variance(b) / b.length;
    const dof = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 5);
    assert.ok(Math.abs(d.halfWidth - t975(dof) * Math.sqrt(va + vb)) < 1e-9);
    assert.ok(!Number.isInteger(dof));
  });

  test("Welch's two-sided p and Holm's adjustment, against R (t.test, p.adjust)", () => {
    // t = 2 on 8 degrees of freedom: p = 0.0805.
    assert.ok(Math.abs(welchP([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) - 0.0805) < 1e-4);
    assert.equal(welchP([1], [2, 3]), 1, 'one run: nothing can be told');
    assert.deepEqual(holm([0.01, 0.04, 0.03]).map((p) => +p.toFixed(6)), [0.03, 0.06, 0.06]);
    assert.deepEqual(holm([0.5, 0.9]), [1, 1], 'capped at 1');
  });
});

describe('judgeSequential: the sequential rule at a false-keep rate', () => {
  const BAR = { ...BEST, runs: 5 };
  const sigma = (dof: number): Noise => ({ sumSq: 0.002 ** 2 * dof, dof, runs: dof + 1 });
  const judge = (scores: number[], dof = 40, rate = 0.01) => judgeSequential(runs(...scores), BAR, 0, sigma(dof), rate);
  function runs(...scores: number[]): TrainingResult[] {
    return scores.map((v) => result({ metrics: { val_bpb: v } }));
  }

  test('the noise in these tests is σ = 0.002', () => assert.ok(Math.abs(sigmaOf(sigma(40))! - 0.002) < 1e-12));

  test('without a noise estimate, or at rate 0, it is plain keep-if-better', () => {
    assert.equal(judgeSequential(runs(0.9999), BAR, 0, NO_NOISE, 0.01).status, 'keep');
    assert.equal(judgeSequential(runs(0.9999), BAR, 0, sigma(40), 0).status, 'keep');
  });

  test('a clear win is kept on one run; a loss, or a gain too small to be worth finding, is discarded on one', () => {
    assert.equal(judge([0.985]).status, 'keep'); // 7.5σ
    assert.equal(judge([1.001]).status, 'discard');
    const small = judge([0.9995]); // 0.25σ: a 2σ gain would rarely score this little
    assert.equal(small.status, 'discard');
    assert.match(small.reason, /within the noise/);
  });

  test('a near-tie trains another seed; undecided after four runs it is a near-miss', () => {
    const tie = judge([0.9955]); // 2.25σ on one run, against a bar of 5 runs
    assert.equal(tie.status, 'confirm');
    assert.match(tie.reason, /z \d\.\d\d .*undecided: confirming/);
    assert.equal(judge([0.9955, 0.9955, 0.9955]).status, 'keep', 'the same gain over three runs is evidence');
    const miss = judge([0.9965, 0.9965, 0.9965, 0.9965]);
    assert.equal(miss.status, 'discard');
    assert.match(miss.reason, /^near-miss: .*undecided after 4 runs/);
  });

  test('σ measured on few degrees of freedom asks for more: the same gain is kept on 40 dof, not on 2', () => {
    assert.equal(judge([0.991], 40).status, 'keep');
    assert.notEqual(judge([0.991], 2).status, 'keep');
  });

  test('--false-keep, or an old --confirm-z mapped to the rate it meant; 0.01 by default', () => {
    assert.equal(falseKeepOf({}), 0.01);
    assert.equal(falseKeepOf({ falseKeep: 0.05, confirmZ: 3 }), 0.05);
    assert.ok(Math.abs(falseKeepOf({ confirmZ: 2 }) - 0.02275) < 1e-5);
    assert.equal(falseKeepOf({ confirmZ: 0 }), 0);
  });
});

describe('the rule\'s operating characteristics, measured by the decision simulator (test/decision-sim.ts)', () => {
  const DECISIONS = 10_000;
  const slack = 3 * Math.sqrt((0.01 * 0.99) / DECISIONS); // three standard errors of a measured 1%
  const [sequential, before] = RULES;

  test(`a change that does nothing is kept at most 1% of the time, in every context (${DECISIONS} decisions each)`, () => {
    for (const [i, ctx] of CONTEXTS.entries()) {
      const r = rates(0, ctx, sequential.rule(0.01), DECISIONS, 11 + i);
      assert.ok(r.keeps / r.decisions <= 0.01 + slack, `${ctx.label}: ${r.keeps} of ${r.decisions} kept`);
    }
  });

  test('the rule before kept 8% of them at the start of a night (σ on 2 dof): the failure this rule fixes', () => {
    const r = rates(0, CONTEXTS[0], before.rule(0.01), DECISIONS, 11);
    assert.ok(r.keeps / r.decisions > 0.05, `${r.keeps} of ${r.decisions}`);
  });

  test('a gain of 5σ is kept nearly always once σ is known (20 dof), in about one training', () => {
    const r = rates(5, CONTEXTS[2], sequential.rule(0.01), DECISIONS, 17);
    assert.ok(r.keeps / r.decisions > 0.99, `${r.keeps} of ${r.decisions}`);
    assert.ok(r.runs / r.decisions < 1.2, `${r.runs / r.decisions} trainings a decision`);
  });

  test('a night of 80 experiments keeps at most one change that does nothing, on average, and a 5σ gain nine times in ten', () => {
    const night = nights(sequential.rule(0.01), 300, 5);
    assert.ok(night.nullKeeps / night.nights <= 1, `${night.nullKeeps} null keeps in ${night.nights} nights`);
    assert.ok(night.realKept[5] / night.nights >= 0.9, `5σ kept in ${night.realKept[5]} of ${night.nights} nights`);
  });
});
