// Scratch copies: one directory per training, under one directory per worker process, so what a
// worker killed mid-training left behind is recognised (its owner is dead) and swept at the next start.
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TrainingInput } from '../workflows/types';

export const SCRATCH_ROOT = join(tmpdir(), 'autoresearch-scratch'); // every worker's scratch, hidden from every box
const OWNER = /^worker-(\d+)-(\d+)$/; // worker-<pid>-<start time>: a reused pid is not the same owner
const PROGRESS_EVERY_FILES = 200; // materialize reports progress this often (the caller heartbeats)

/** When a process started (clock ticks since boot, /proc/<pid>/stat field 22), or null when it is gone. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null; // comm may hold spaces and ')'
  } catch {
    return null;
  }
}

/** This worker process's own directory under the scratch root. */
export function workerScratch(root = SCRATCH_ROOT): string {
  return join(root, `worker-${process.pid}-${processStart(process.pid) ?? 0}`);
}

/** Removes the scratch directories of workers that are no longer running; returns what it removed. */
export async function sweepScratch(root = SCRATCH_ROOT): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(root).catch(() => [])) {
    const owner = OWNER.exec(name);
    if (owner && processStart(Number(owner[1])) === owner[2]) continue;
    await rm(join(root, name), { recursive: true, force: true });
    swept.push(join(root, name));
  }
  return swept;
}

/** A fresh directory for one training, named after its experiment for whoever looks at the disk (or /proc). */
export async function newScratch(experimentId: string, root = SCRATCH_ROOT): Promise<string> {
  const mine = workerScratch(root);
  await mkdir(mine, { recursive: true, mode: 0o700 });
  return mkdtemp(join(mine, `autoresearch-${experimentId.replace(/[^\w.-]/g, '_')}-`));
}

/**
 * Copies the checkout's tracked files into `dir` and writes the candidate's editable files over
 * them, calling `progress(done, total)` every few hundred files: a large repo takes a while.
 */
export async function materialize(
  checkout: string,
  paths: string[],
  input: Pick<TrainingInput, 'files'>,
  dir: string,
  progress: (done: number, total: number) => void = () => {},
): Promise<void> {
  for (const [i, path] of paths.entries()) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await copyFile(join(checkout, path), join(dir, path));
    await chmod(join(dir, path), (await stat(join(checkout, path))).mode);
    if ((i + 1) % PROGRESS_EVERY_FILES === 0) progress(i + 1, paths.length);
  }
  for (const [path, content] of Object.entries(input.files)) await writeFile(join(dir, path), content);
  progress(paths.length, paths.length);
}
