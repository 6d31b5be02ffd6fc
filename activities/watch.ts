// Watching an experiment's workflow from a run that did not start it (the study continued as new since):
// only its starter holds a child handle, so a later run waits on the workflow by id through the client.
import { CancelledFailure, Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { howClosed } from '../workflows/failures';

const HEARTBEAT_MS = 5_000;

/** Waits until the workflow closes: 'completed', or how it ended otherwise ('was terminated by hand', 'failed: …'). */
export async function watchExperiment(workflowId: string): Promise<string> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), HEARTBEAT_MS);
  try {
    await Promise.race([context.client.workflow.getHandle(workflowId).result(), context.cancelled]);
    return 'completed';
  } catch (err) {
    if (err instanceof CancelledFailure) throw err; // the study moved on (continued as new, or ended)
    if (err instanceof WorkflowFailedError) return howClosed(err.cause);
    if (err instanceof WorkflowNotFoundError) return 'is gone';
    throw err;
  } finally {
    clearInterval(beat);
  }
}
