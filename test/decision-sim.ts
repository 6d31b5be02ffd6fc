// A simulator of single decisions through the study's own rule (judgeSequential in workflows/decide.ts): a
// candidate with a known true gain, trained on fresh seeds against a bar measured on a few runs, with σ
// pooled from unselected runs, until the rule keeps or discards it. Its rates are the rule's operating
// characteristics: false keeps at a gain of 0, power at 2σ, and the trainings it costs.
import { DEFAULT_CONFIRM_Z, judgeRuns, judgeSequential, withGroup, NO_NOISE, type Judgement, type Noise } from '../workflows/decide';
import type { Best } from '../workflows/types';
import type { TrainingResult } from '../workflows/types';

export interface Context {
  label: string;
  barRuns: number; // trainings behind the parent's score (the baseline's repeats, reruns of the best)
  poolDof: number; // degrees of freedom of σ's estimate besides the bar's own runs
}

export const CONTEXTS: Context[] = [
  { label: 'start of a night (baseline 3 runs, σ from them: 2 dof)', barRuns: 3, poolDof: 0 },
  { label: 'start of a night (baseline 5 runs, σ from them: 4 dof)', barRuns: 5, poolDof: 0 },
  { label: 'later in a night (bar 5 runs, σ on 20 dof)', barRuns: 5, poolDof: 16 },
  { label: 'later in a night (bar 3 runs, σ on 20 dof)', barRuns: 3, poolDof: 18 },
];

export const EFFECTS = [0, 0.5, 1, 2, 5]; // true gains, in σ

export interface Rates {
  decisions: number;
  keeps: number;
  runs: number; // trainings, all of them
}

/** mulberry32: small, seeded, the same figures on every machine. */
export function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const run = (valBpb: number): TrainingResult => ({
  exitCode: 0, timedOut: false, metrics: { val_bpb: valBpb }, seconds: 1, logTail: '', worker: 'sim', sandboxed: true,
});

/** A decision rule as the study calls it: the candidate's runs so far, its bar, the noise. */
export type Rule = (results: TrainingResult[], bar: Best & { runs: number }, noise: Noise) => Judgement;

export const RULES: { name: string; rule: (falseKeep: number) => Rule }[] = [
  { name: 'sequential (rules 3)', rule: (rate) => (results, bar, noise) => judgeSequential(results, bar, 0, noise, rate) },
  { name: `z band, z = ${DEFAULT_CONFIRM_Z} (before)`, rule: () => (results, bar, noise) => judgeRuns(results, bar, 0, noise, DEFAULT_CONFIRM_Z) },
];

/** One candidate of true gain `effect`·σ (σ = 1, bar at 0) judged to the end: kept or not, and its trainings. */
export function decideOnce(effect: number, ctx: Context, rule: Rule, random: () => number): { kept: boolean; runs: number } {
  const bar = Array.from({ length: ctx.barRuns }, () => gaussian(random));
  let noise: Noise = withGroup(NO_NOISE, bar);
  if (ctx.poolDof > 0) noise = withGroup(noise, Array.from({ length: ctx.poolDof + 1 }, () => gaussian(random)));
  const best = { experimentId: 'the bar', commit: 'bar', valBpb: bar.reduce((a, b) => a + b, 0) / bar.length, runs: bar.length };
  const results: TrainingResult[] = [];
  for (;;) {
    results.push(run(-effect + gaussian(random)));
    const j = rule(results, best, noise);
    if (j.status !== 'confirm') return { kept: j.status === 'keep', runs: results.length };
  }
}

export function rates(effect: number | (() => number), ctx: Context, rule: Rule, decisions: number, seed: number): Rates {
  const random = generator(seed);
  const out: Rates = { decisions, keeps: 0, runs: 0 };
  for (let i = 0; i < decisions; i++) {
    const d = decideOnce(typeof effect === 'number' ? effect : effect(), ctx, rule, random);
    out.keeps += d.kept ? 1 : 0;
    out.runs += d.runs;
  }
  return out;
}

/**
 * A night's mix of true gains, in σ: 40% changes that do nothing, 45% that hurt (by an exponential spread,
 * mean 4σ), 15% that help (mean 3σ); about the 15% keep rate public nights report.
 */
export function nightMix(random: () => number): () => number {
  return () => {
    const u = random();
    const size = -Math.log(1 - random());
    return u < 0.4 ? 0 : u < 0.85 ? -4 * size : 3 * size;
  };
}

export interface NightFigures {
  nights: number;
  nullKeeps: number; // over all nights
  realKept: Record<number, number>; // by true gain: nights that kept it
  extraTrainings: number; // trainings beyond one a candidate, over all nights
  candidates: number;
}

/**
 * Nights in miniature, as the study decides them: a baseline of `baselineRuns`, then `changes` candidates in
 * turn against the current best (its own runs are the bar, winner's curse and all), σ pooled from the unselected
 * runs (the baseline's, and every candidate's runs after its first). All changes do nothing but `real`, placed
 * at even intervals, each worth its gain in σ.
 */
export function nights(rule: Rule, count: number, seed: number, changes = 79, real = [2, 5], baselineRuns = 5): NightFigures {
  const random = generator(seed);
  const out: NightFigures = { nights: count, nullKeeps: 0, realKept: Object.fromEntries(real.map((g) => [g, 0])), extraTrainings: 0, candidates: 0 };
  for (let k = 0; k < count; k++) {
    let truth = 0; // the best's true score
    let barRuns = Array.from({ length: baselineRuns }, () => gaussian(random));
    let noise = withGroup(NO_NOISE, barRuns);
    for (let i = 0; i < changes; i++) {
      const at = real.findIndex((_, r) => i === Math.floor(((r + 1) * changes) / (real.length + 1)));
      const gain = at >= 0 ? real[at] : 0;
      const bar = { experimentId: 'best', commit: 'best', valBpb: barRuns.reduce((a, b) => a + b, 0) / barRuns.length, runs: barRuns.length };
      const results: TrainingResult[] = [];
      let j: Judgement;
      do {
        results.push(run(truth - gain + gaussian(random)));
        j = rule(results, bar, noise);
      } while (j.status === 'confirm');
      const scores = results.map((r) => r.metrics.val_bpb);
      out.candidates++;
      out.extraTrainings += scores.length - 1;
      if (j.status === 'keep') {
        if (gain === 0) out.nullKeeps++;
        else out.realKept[gain]++;
        truth -= gain;
        barRuns = scores;
      }
      noise = withGroup(noise, scores.slice(1));
    }
  }
  return out;
}
