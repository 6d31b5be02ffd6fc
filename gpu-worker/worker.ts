// Training slots on the task queue of one research repo: each slot runs at most one training at a
// time, pinned to its own GPU when it has one, every training in its own box.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { git, resolve, rootCommit } from '../activities/git';
import { RepoError } from '../activities/repo';
import { gpuQueueFor } from '../workflows/types';
import { defaultLimits, type Limits } from './limits';
import { buildSyscallFilter, realPath, sandboxProblem, type Network } from './sandbox';
import { sweepScratch, workerScratch } from './scratch';
import { createTrainingActivities, slotName, type Slot } from './training';

export interface GpuWorkerOptions {
  checkout: string; // this host's clone of the research repo
  slots: number; // CPU slots, when no GPUs are given
  gpus?: string[]; // one slot per GPU index
  pathPrefix?: string;
  sandbox?: boolean; // default true; false (--no-sandbox) runs proposed code unconfined
  network?: Network; // default 'none'; 'egress' (--network): the internet, not this host's loopback or private ranges; 'host' (--host-network): all of it
  networkAllow?: string[]; // with 'egress': CIDRs it may reach too (--network-allow)
  limits?: Partial<Limits>; // what the user set; the rest are the defaults for this host
  log?: (line: string) => void; // what the worker does at start (scratch swept)
}

export function slotsFor(opts: GpuWorkerOptions): Slot[] {
  const count = opts.gpus?.length ?? opts.slots;
  const limits = defaultLimits(count, opts.limits);
  const identities = opts.gpus ? gpuIdentities(opts.gpus) : new Map<string, GpuIdentity>();
  return Array.from({ length: count }, (_, i) => ({
    name: slotName(i),
    checkout: opts.checkout,
    cudaVisibleDevices: opts.gpus?.[i],
    gpu: opts.gpus && identities.get(opts.gpus[i]),
    pathPrefix: opts.pathPrefix,
    sandbox: opts.sandbox !== false,
    network: opts.network ?? 'none',
    networkAllow: opts.networkAllow,
    limits,
  }));
}

/**
 * The task queue of the trainings of the repo the checkout holds, after checking that it is one:
 * the top of a git repository with at least one commit. Any clone of the repo names the same queue.
 */
export async function gpuQueueOf(checkout: string): Promise<string> {
  const kind = await stat(checkout).then((s) => (s.isDirectory() ? 'dir' : 'file'), () => null);
  const refuse = (why: string) => new RepoError(`gpu-worker --repo: ${checkout} ${why}`);
  if (kind === null) throw refuse('does not exist');
  if (kind === 'file') throw refuse('is a file, not a clone of the research repo');
  const top = await git(checkout).raw(['rev-parse', '--show-toplevel']).then((s) => s.trim(), () => null);
  if (top === null) throw refuse('is not a git repository (clone the research repo there)');
  if (resolvePath(top) !== realPath(checkout)) throw refuse(`is inside the git repository ${top}, not its top`);
  if (!(await resolve(checkout, 'HEAD'))) throw refuse('has no commits yet');
  return gpuQueueFor(await rootCommit(checkout));
}

/** One Temporal worker for all the host's slots: the SDK allows one worker per task queue per process. */
export async function createGpuWorker(connection: NativeConnection, namespace: string, opts: GpuWorkerOptions) {
  const taskQueue = await gpuQueueOf(opts.checkout);
  const problem = opts.sandbox === false ? null : sandboxProblem();
  if (problem) throw new Error(problem);
  const swept = await sweepScratch();
  if (swept.length) opts.log?.(`removed the scratch directories of ${swept.length} dead worker(s): ${swept.join(' ')}`);
  const filter = opts.sandbox === false ? undefined : await syscallFilter(opts.log);
  const slots = slotsFor(opts).map((slot) => ({ ...slot, syscallFilter: filter }));
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities: createTrainingActivities(slots),
    maxConcurrentActivityTaskExecutions: slots.length, // one training per slot: a GPU is never shared
    maxHeartbeatThrottleInterval: '2 seconds', // progress in the UI and `status` stays fresh
  });
}

/** The boxes' syscall filter, built in this worker's scratch folder; none (and a line saying why) where it cannot be. */
async function syscallFilter(log: GpuWorkerOptions['log']): Promise<string | undefined> {
  const path = join(await workerScratch(), 'syscalls.bpf');
  const problem = await buildSyscallFilter(path);
  log?.(problem ? `warning: no syscall filter in the boxes: ${problem}` : 'syscall filter: seccomp refuses ptrace, keyctl, bpf, ' +
    'userfaultfd, perf_event_open, mounts, new namespaces, kernel modules and kexec in every box');
  return problem ? undefined : path;
}

/** GPU indexes from `nvidia-smi --query-gpu=index --format=csv,noheader`: one number a line. */
export function parseGpuIndexes(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => /^\d+$/.test(l));
}

/** A GPU as the driver names it: CUDA selects it by UUID, the box shows it as /dev/nvidia<minor>. */
export interface GpuIdentity {
  uuid: string;
  minor: number;
}

/** `index, uuid` lines of `nvidia-smi --query-gpu=index,uuid --format=csv,noheader`. */
export function parseGpuUuids(text: string): Map<string, string> {
  const pairs = text.split('\n').map((l) => /^\s*(\d+)\s*,\s*(GPU-[\w-]+)\s*$/.exec(l)).filter((m) => m !== null);
  return new Map(pairs.map((m) => [m[1], m[2]]));
}

/** The UUID and device minor of the driver's `/proc/driver/nvidia/gpus/<bus>/information`, or null. */
export function parseGpuInformation(text: string): GpuIdentity | null {
  const uuid = /^GPU UUID:\s*(GPU-[\w-]+)/m.exec(text)?.[1];
  const minor = /^Device Minor:\s*(\d+)/m.exec(text)?.[1];
  return uuid && minor ? { uuid, minor: Number(minor) } : null;
}

/**
 * Each GPU index's identity, from nvidia-smi and the driver's /proc files: nvidia-smi's index is not
 * always the device minor. An index left out is one whose node cannot be told: its slot's box shows every GPU node.
 */
export function gpuIdentities(indexes: string[], proc = '/proc/driver/nvidia/gpus'): Map<string, GpuIdentity> {
  const out = spawnSync('nvidia-smi', ['--query-gpu=index,uuid', '--format=csv,noheader'], { encoding: 'utf8' });
  const uuids = out.status === 0 ? parseGpuUuids(out.stdout) : new Map<string, string>();
  const known = (existsSync(proc) ? readdirSync(proc) : [])
    .flatMap((bus) => parseGpuInformation(readText(join(proc, bus, 'information'))) ?? []);
  return new Map(indexes.flatMap((index) => {
    const found = known.find((g) => g.uuid === uuids.get(index));
    return found ? [[index, found] as const] : [];
  }));
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** `--gpus all`: every GPU nvidia-smi lists, or none when there is no nvidia-smi or no GPU. */
export function detectGpus(): string[] {
  const out = spawnSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { encoding: 'utf8' });
  return out.status === 0 ? parseGpuIndexes(out.stdout) : [];
}
