// The control worker: runs the research workflow and the activities that own the research repo.
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundle } from '@temporalio/worker';
import { CONTROL_QUEUE } from '../workflows/types';
import { controlActivities } from './index';

let bundle: Promise<WorkflowBundle> | undefined;

/** Bundled once per process: several workers (tests, the demo) share one webpack build. */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietBundler });
  return bundle;
}

const quietBundler = { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} };

export async function createControlWorker(connection: NativeConnection, namespace: string): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue: CONTROL_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: controlActivities,
  });
}
