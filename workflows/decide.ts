// Keep-if-better, as a pure function the workflow and the tests both call.
import type { Best, ExperimentStatus, TrainingResult } from './types';

export interface Decision {
  status: ExperimentStatus;
  reason: string;
  valBpb: number | null;
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
