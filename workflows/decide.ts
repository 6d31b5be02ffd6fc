// Keep-if-better, as a pure function the workflow and the tests both call.
import type { Best, ExperimentStatus, TrainingResult } from './types';

export interface Decision {
  status: ExperimentStatus;
  reason: string;
  valBpb: number | null;
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
