// Limits on every training: memory, processes and threads, file size, and the size of the box's
// in-memory folders. Set with rlimits (prlimit, util-linux) in front of the command: this host has no
// delegated cgroup v2, and an rlimit needs no privilege. Going past one is a crash that says which.
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';

const GIB = 1024 ** 3;
export const DEFAULT_PROCESSES = 1024;
export const DEFAULT_FILE_BYTES = 32 * GIB; // a checkpoint of a large model fits; a runaway log does not
const TMPFS_SHARE = 4; // /tmp, HOME and /dev/shm each hold up to a quarter of the memory limit

export interface Limits {
  memoryBytes: number; // RLIMIT_DATA: the heap and private mappings (not CUDA's address-space reservations)
  processes: number; // RLIMIT_NPROC: processes and threads of the box's user
  fileBytes: number; // RLIMIT_FSIZE: the largest file a training may write
}

/** The defaults for a host with this many slots: its memory shared evenly. */
export function defaultLimits(slots: number, flags: Partial<Limits> = {}): Limits {
  return {
    memoryBytes: flags.memoryBytes ?? Math.floor(totalmem() / Math.max(slots, 1)),
    processes: flags.processes ?? DEFAULT_PROCESSES,
    fileBytes: flags.fileBytes ?? DEFAULT_FILE_BYTES,
  };
}

export function tmpfsBytes(limits: Limits): number {
  return Math.floor(limits.memoryBytes / TMPFS_SHARE);
}

/** The command's prefix that sets the limits (the soft and hard limit alike: no way to raise them). */
export function limitPrefix(limits: Limits): string[] {
  return ['prlimit', `--data=${limits.memoryBytes}`, `--nproc=${limits.processes}`, `--fsize=${limits.fileBytes}`, '--'];
}

export const size = (bytes: number) =>
  bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;

/** The worker's start-up line: what is in force, and by which means. */
export function describeLimits(limits: Limits, boxed: boolean): string {
  const cgroup = existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'cgroup v2 is not delegated to this worker' : 'no cgroup v2 here';
  const tmpfs = boxed ? `, /tmp, HOME and /dev/shm ${size(tmpfsBytes(limits))} each` : '';
  return `limits per training (rlimits; ${cgroup}): memory ${size(limits.memoryBytes)}, ` +
    `${limits.processes} processes and threads of its user, files up to ${size(limits.fileBytes)}${tmpfs}`;
}

const XFSZ_EXIT = 128 + 25; // bash's status for a command killed by SIGXFSZ

/** Why a failed training failed, when it was a limit: a crash that says which, with the flag that sets it. */
export function limitReason(exitCode: number | null, tail: string, limits: Limits): string | null {
  if (exitCode === 0 || exitCode === null) return null;
  if (exitCode === XFSZ_EXIT || /File size limit exceeded/.test(tail)) {
    return `file size limit: a file grew past ${size(limits.fileBytes)} (gpu-worker --file-size-limit)`;
  }
  if (/\bMemoryError\b|Cannot allocate memory|std::bad_alloc/.test(tail)) {
    return `memory limit: the training asked for more than ${size(limits.memoryBytes)} (gpu-worker --memory-limit)`;
  }
  if (/Resource temporarily unavailable|can't start new thread/.test(tail)) {
    return `process limit: more than ${limits.processes} processes and threads (gpu-worker --process-limit)`;
  }
  if (/No space left on device/.test(tail)) {
    return `space limit: /tmp, HOME and /dev/shm hold ${size(tmpfsBytes(limits))} each; write big files in the scratch folder`;
  }
  return null;
}
