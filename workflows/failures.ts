// Reading the failures that activities and child workflows hand back to workflow code.
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

/** The type of the ApplicationFailure an activity threw, if it threw one. */
export function failureType(err: unknown): string | undefined {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure
    ? (err.cause.type ?? undefined)
    : undefined;
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
