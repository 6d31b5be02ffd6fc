// Reading the failures that activities and child workflows hand back to workflow code.
// Plain failure classes from @temporalio/common: activities read them too (watching an experiment).
import { ActivityFailure, ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';

/** The type of the ApplicationFailure an activity threw, if it threw one. */
export function failureType(err: unknown): string | undefined {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure
    ? (err.cause.type ?? undefined)
    : undefined;
}

/** Tokens an activity reported spending before it failed (its failure's details: `{ tokens }`). */
export function tokensSpent(err: unknown): number {
  const details = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.details : undefined;
  const tokens = (details?.[0] as { tokens?: unknown } | undefined)?.tokens;
  return typeof tokens === 'number' ? tokens : 0;
}

/** The innermost message of a failure chain: what actually went wrong. */
export function causeOf(err: unknown): string {
  let e = err as Error | undefined;
  while (e?.cause instanceof Error) e = e.cause;
  return e?.message ?? String(err);
}

/** The line the Web UI shows beside an activity in the event history (at most 200 bytes). */
export function summary(subject: string, what: string): { summary: string } {
  const text = `${subject}: ${what.replace(/\s+/g, ' ')}`;
  return { summary: text.length > 180 ? `${text.slice(0, 179)}…` : text };
}

/** How a workflow ended that did not complete, from the cause of its failure: the reason its row gives. */
export function howClosed(cause: unknown): string {
  if (cause instanceof TerminatedFailure) return 'was terminated by hand';
  if (cause instanceof TimeoutFailure) return 'timed out';
  if (cause instanceof CancelledFailure) return 'was cancelled';
  return `failed: ${causeOf(cause)}`;
}
