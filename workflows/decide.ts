// Keep-if-better, as a pure function the workflow and the tests both call.
import { tAsZ, upperTail, zFor } from './stats';
import type { Best, ExperimentStatus, RunConfig, TrainingResult } from './types';

export interface Decision {
  status: ExperimentStatus;
  reason: string;
  valBpb: number | null;
  nearMiss?: boolean; // not kept, though its mean beat the bar after more than one run: a lead to recombine later
}

/** The result of a training that never ran (cancelled, no commit, its proposer or its workflow failed). */
export function untrained(problem: string): TrainingResult {
  return { exitCode: null, timedOut: false, metrics: {}, seconds: 0, logTail: '', problem, worker: '', sandboxed: true };
}

/** Why a finished command cannot be scored, or null when it produced a finite val_bpb. */
export function crashReason(result: TrainingResult): string | null {
  if (result.problem) return result.problem;
  if (result.timedOut) return `timeout after ${Math.round(result.seconds)}s`;
  if (result.exitCode !== 0) return `exit code ${result.exitCode}`;
  const valBpb = result.metrics.val_bpb;
  if (valBpb === undefined) return 'no val_bpb in the summary';
  if (!Number.isFinite(valBpb)) return `val_bpb is ${valBpb}`;
  return null;
}

/**
 * The baseline is kept whenever it scores: it sets the bar. Every later candidate is kept only if it
 * beats the current best by more than minImprovement.
 */
export function decide(result: TrainingResult, best: Best | null, minImprovement: number): Decision {
  const crash = crashReason(result);
  if (crash) return { status: 'crash', reason: crash, valBpb: null };
  const valBpb = result.metrics.val_bpb;
  if (best === null) return { status: 'keep', reason: 'baseline', valBpb };
  if (valBpb < best.valBpb - minImprovement) {
    return { status: 'keep', reason: `improved on ${best.valBpb.toFixed(6)} (${best.experimentId})`, valBpb };
  }
  return { status: 'discard', reason: `not better than ${best.valBpb.toFixed(6)} (${best.experimentId})`, valBpb };
}

/** σ of val_bpb between runs of one commit, pooled over every group of repeated runs. */
export interface Noise {
  sumSq: number; // Σ over groups of Σ (x − group mean)²
  dof: number; // Σ over groups of (runs − 1)
  runs: number; // trainings that went into it
}

export const NO_NOISE: Noise = { sumSq: 0, dof: 0, runs: 0 };
export const DEFAULT_CONFIRM_Z = 2;
export const CLEAR_WIN = 3; // a first run that beats the best by this many bands needs no confirmation

export function sigmaOf(noise: Noise): number | null {
  return noise.dof > 0 ? Math.sqrt(noise.sumSq / noise.dof) : null;
}

/** The noise estimate with one more group of runs of one commit (a single run adds nothing). */
export function withGroup(noise: Noise, scores: number[]): Noise {
  if (scores.length < 2) return noise;
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
  const sumSq = scores.reduce((sum, x) => sum + (x - mean) ** 2, 0);
  return { sumSq: noise.sumSq + sumSq, dof: noise.dof + scores.length - 1, runs: noise.runs + scores.length };
}

export type Judgement = Decision | { status: 'confirm'; reason: string; valBpb: number };

/**
 * Keep-if-better with the noise floor. The score of several runs is their mean. Without a noise
 * estimate it is plain keep-if-better. With one, the band is max(--min-improvement, z·σ):
 * a first run that beats the best by less than CLEAR_WIN bands is trained again on another seed
 * ("confirm"), and kept only if the mean of its runs beats the best by the band. Clear wins and
 * clear losses cost nothing extra.
 */
export function judgeRuns(
  results: TrainingResult[],
  best: Best | null,
  minImprovement: number,
  noise: Noise,
  z = DEFAULT_CONFIRM_Z,
): Judgement {
  for (const r of results) {
    const crash = crashReason(r);
    if (crash) return { status: 'crash', reason: crash, valBpb: null };
  }
  const scores = results.map((r) => r.metrics.val_bpb);
  const valBpb = scores.reduce((a, b) => a + b, 0) / scores.length;
  const sigma = sigmaOf(noise);
  if (best === null || sigma === null || z === 0)
    return decide({ ...results[0], metrics: { ...results[0].metrics, val_bpb: valBpb } }, best, minImprovement);
  const gain = best.valBpb - valBpb;
  const band = Math.max(minImprovement, z * sigma);
  const against = `${best.valBpb.toFixed(6)} (${best.experimentId})`;
  if (gain <= minImprovement || gain <= 0) return { status: 'discard', reason: `not better than ${against}`, valBpb };
  if (results.length === 1 && gain < CLEAR_WIN * band) {
    return {
      status: 'confirm',
      reason: `beat ${against} by ${gain.toFixed(6)}, inside ${CLEAR_WIN}×${band.toFixed(6)}: confirming`,
      valBpb,
    };
  }
  if (gain >= band) {
    const how = results.length > 1 ? `confirmed over ${results.length} runs` : 'a clear win';
    return {
      status: 'keep',
      reason: `improved on ${against}, ${how} (gain ${gain.toFixed(6)}, band ${band.toFixed(6)})`,
      valBpb,
    };
  }
  return {
    status: 'discard',
    reason: `within the noise: mean of ${results.length} runs beat ${against} by ${gain.toFixed(6)} < band ${band.toFixed(6)}`,
    valBpb,
  };
}

// ---- the sequential rule (study rules 3) ---------------------------------------------------------------

export const DEFAULT_FALSE_KEEP = 0.01; // per change that does nothing
export const DESIGN_GAIN = 2; // σ: the true gain the rule must keep with POWER
export const POWER = 0.9;
export const MAX_RUNS = 4; // a candidate still undecided after this many runs is discarded: a near-miss

/** The night's false-keep rate: --false-keep, or the rate an old --confirm-z margin meant with a known σ; 0 turns the noise model off. */
export function falseKeepOf(config: Pick<RunConfig, 'falseKeep' | 'confirmZ'>): number {
  if (config.falseKeep !== undefined) return config.falseKeep;
  if (config.confirmZ !== undefined) return config.confirmZ === 0 ? 0 : upperTail(config.confirmZ);
  return DEFAULT_FALSE_KEEP;
}

// Each of a candidate's looks (up to MAX_RUNS) may keep it, so one look spends part of the rate; the looks share
// one bar and overlap, and the decision simulator measured 1/3.5 of the rate a look to hold the whole under it.
const LOOK_SHARE = 3.5;

/**
 * A sequential test of the candidate against its parent. After each run the gain's t statistic (σ pooled from
 * unselected runs with its degrees of freedom; the bar's own runs in the standard error) is mapped to the
 * normal score with the same tail, so a σ measured on few runs widens the band by what Student's t says.
 * Keep once that score passes the rate's quantile; discard once the candidate is not better at all, or once its
 * gain, raised by the POWER quantile of its own noise, stays under DESIGN_GAIN·σ (unlikely to be a gain worth
 * finding); else train another seed, at most MAX_RUNS. Without a noise estimate: plain keep-if-better.
 */
export function judgeSequential(
  results: TrainingResult[],
  bar: (Best & { runs: number }) | null,
  minImprovement: number,
  noise: Noise,
  falseKeep: number,
): Judgement {
  for (const r of results) {
    const crash = crashReason(r);
    if (crash) return { status: 'crash', reason: crash, valBpb: null };
  }
  const scores = results.map((r) => r.metrics.val_bpb);
  const n = scores.length;
  const valBpb = scores.reduce((a, b) => a + b, 0) / n;
  const pooled = withGroup(noise, scores.slice(1)); // its own runs after the first were not selected: they measure σ too
  const sigma = sigmaOf(pooled);
  if (bar === null || sigma === null || sigma === 0 || falseKeep === 0)
    return decide({ ...results[0], metrics: { ...results[0].metrics, val_bpb: valBpb } }, bar, minImprovement);
  const gain = bar.valBpb - valBpb;
  const against = `${bar.valBpb.toFixed(6)} (${bar.experimentId}, ${bar.runs} run${bar.runs === 1 ? '' : 's'})`;
  if (gain <= Math.max(0, minImprovement)) return { status: 'discard', reason: `not better than ${against}`, valBpb };
  const z = tAsZ(gain / (sigma * Math.sqrt(1 / n + 1 / bar.runs)), pooled.dof);
  const how = `gain ${gain.toFixed(6)} over ${n} run${n === 1 ? '' : 's'} = ${(gain / sigma).toFixed(2)}σ, z ${z.toFixed(2)} (σ ${sigma.toFixed(6)} on ${pooled.dof} dof)`;
  if (z >= zFor(falseKeep / LOOK_SHARE)) return { status: 'keep', reason: `improved on ${against}: ${how}`, valBpb };
  // σ's point estimate on this side: a discard only costs power, so it need not pay Student's t for few dof.
  const hopeless = gain + zFor(1 - POWER) * (sigma / Math.sqrt(n)) < DESIGN_GAIN * sigma;
  if (hopeless) return { status: 'discard', reason: `within the noise: ${how} over ${against}`, valBpb, ...(n > 1 ? { nearMiss: true } : {}) };
  if (n >= MAX_RUNS)
    return { status: 'discard', reason: `near-miss: ${how} over ${against}, undecided after ${n} runs`, valBpb, nearMiss: true };
  return { status: 'confirm', reason: `beat ${against}: ${how}, undecided: confirming`, valBpb };
}
