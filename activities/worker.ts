// The control worker: runs the research workflow and the activities that own the research repo.
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundle } from '@temporalio/worker';
import { CONTROL_QUEUE } from '../workflows/types';
import { controlActivities, type RecordInput } from './index';
import { formatScore } from './results';

let bundle: Promise<WorkflowBundle> | undefined;

/** Bundled once per process: several workers (tests, the demo) share one webpack build. */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietBundler });
  return bundle;
}

const quietBundler = { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} };

/** `log`: one line per recorded experiment, as in results.tsv (the `worker` verb prints them; tests need not). */
export async function createControlWorker(connection: NativeConnection, namespace: string, log?: (line: string) => void): Promise<Worker> {
  const recordExperiment = async (input: RecordInput) => {
    await controlActivities.recordExperiment(input);
    const r = input.record;
    log?.(`${r.id}\t${(r.commit ?? '0000000').slice(0, 7)}\t${formatScore(r.valBpb)}\t${r.status}\t${r.description}`);
  };
  return Worker.create({
    connection,
    namespace,
    taskQueue: CONTROL_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: { ...controlActivities, recordExperiment },
  });
}
