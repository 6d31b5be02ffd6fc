// Training slots on the `gpu` task queue: one Temporal worker per slot, each running at most one
// training at a time, each pinned to its own GPU when it has one.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { GPU_QUEUE } from '../workflows/types';
import { createTrainingActivities, slotName, type Slot } from './training';

export interface GpuWorkerOptions {
  checkout: string; // this host's clone of the research repo
  slots: number; // CPU slots, when no GPUs are given
  gpus?: string[]; // one slot per GPU index
  pathPrefix?: string;
}

export function slotsFor(opts: GpuWorkerOptions): Slot[] {
  const count = opts.gpus?.length ?? opts.slots;
  return Array.from({ length: count }, (_, i) => ({
    name: slotName(i),
    checkout: opts.checkout,
    cudaVisibleDevices: opts.gpus?.[i],
    pathPrefix: opts.pathPrefix,
  }));
}

export async function createGpuWorkers(connection: NativeConnection, namespace: string, opts: GpuWorkerOptions): Promise<Worker[]> {
  return Promise.all(
    slotsFor(opts).map((slot) =>
      Worker.create({
        connection,
        namespace,
        taskQueue: GPU_QUEUE,
        identity: slot.name,
        activities: createTrainingActivities(slot),
        maxConcurrentActivityTaskExecutions: 1, // one training per slot: a GPU is never shared
        maxHeartbeatThrottleInterval: '2 seconds', // progress in the UI and `status` stays fresh
      }),
    ),
  );
}
