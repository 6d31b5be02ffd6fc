// Training slots on the `gpu` task queue: each slot runs at most one training at a time, pinned to
// its own GPU when it has one.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { spawnSync } from 'node:child_process';
import { GPU_QUEUE } from '../workflows/types';
import { createTrainingActivities, slotName, type Slot } from './training';

export interface GpuWorkerOptions {
  checkout: string; // this host's clone of the research repo
  slots: number; // CPU slots, when no GPUs are given
  gpus?: string[]; // one slot per GPU index
  pathPrefix?: string;
  noNetwork?: boolean;
}

export function slotsFor(opts: GpuWorkerOptions): Slot[] {
  const count = opts.gpus?.length ?? opts.slots;
  return Array.from({ length: count }, (_, i) => ({
    name: slotName(i),
    checkout: opts.checkout,
    cudaVisibleDevices: opts.gpus?.[i],
    pathPrefix: opts.pathPrefix,
    noNetwork: opts.noNetwork,
  }));
}

/** One Temporal worker for all the host's slots: the SDK allows one worker per task queue per process. */
export async function createGpuWorker(connection: NativeConnection, namespace: string, opts: GpuWorkerOptions): Promise<Worker> {
  const slots = slotsFor(opts);
  return Worker.create({
    connection,
    namespace,
    taskQueue: GPU_QUEUE,
    activities: createTrainingActivities(slots),
    maxConcurrentActivityTaskExecutions: slots.length, // one training per slot: a GPU is never shared
    maxHeartbeatThrottleInterval: '2 seconds', // progress in the UI and `status` stays fresh
  });
}

/** GPU indexes from `nvidia-smi --query-gpu=index --format=csv,noheader`: one number a line. */
export function parseGpuIndexes(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => /^\d+$/.test(l));
}

/** `--gpus all`: every GPU nvidia-smi lists, or none when there is no nvidia-smi or no GPU. */
export function detectGpus(): string[] {
  const out = spawnSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { encoding: 'utf8' });
  return out.status === 0 ? parseGpuIndexes(out.stdout) : [];
}
