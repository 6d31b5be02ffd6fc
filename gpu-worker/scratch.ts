// Scratch copies: one directory per training, under one directory per worker process, so what a
// worker killed mid-training left behind is recognised (its owner is dead) and swept at the next start.
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TrainingInput } from '../workflows/types';
import { boxFiles } from './files';

export const SCRATCH_ROOT = join(tmpdir(), 'autoresearch-scratch'); // every worker's scratch, hidden from every box
// worker-<pid>-<start time>-<random>: a reused pid is not the same owner (workers before the random part had none)
const OWNER = /^worker-(\d+)-(\d+)(-\w+)?$/;
const PROGRESS_EVERY_FILES = 200; // materialize reports progress this often (the caller heartbeats)

type Warn = (line: string) => void;
const warnOnStderr: Warn = (line) => console.warn(`warning: ${line}`);

/** When a process started (clock ticks since boot, /proc/<pid>/stat field 22), or null when it is gone. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null; // comm may hold spaces and ')'
  } catch {
    return null;
  }
}

/**
 * Finds or makes the scratch root as a folder of this user's that only this user can enter: at a
 * well-known path in a shared /tmp it could be another user's, or a link to one. Why not, or null.
 */
async function ownRoot(root: string): Promise<string | null> {
  await mkdir(root, { recursive: true, mode: 0o700 }).catch(() => {});
  const st = await lstat(root).catch(() => null);
  if (!st?.isDirectory() || st.uid !== process.getuid?.()) {
    return `the scratch root ${root} is not a folder of this user's`;
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(root, 0o700);
  return null;
}

const mine = new Map<string, Promise<string>>(); // scratch root → this worker's folder in it

/** This worker process's own folder under the scratch root: made once, with a name nobody can guess. */
export async function workerScratch(root = SCRATCH_ROOT): Promise<string> {
  const problem = await ownRoot(root);
  if (problem) throw new Error(problem);
  if (!mine.has(root)) {
    const made = mkdtemp(join(root, `worker-${process.pid}-${processStart(process.pid) ?? 0}-`));
    made.catch(() => mine.delete(root));
    mine.set(root, made);
  }
  const dir = await mine.get(root)!;
  await mkdir(dir, { recursive: true, mode: 0o700 }); // again, if a tmp cleaner removed it
  return dir;
}

/** Removes the scratch folders of workers that are no longer running; returns what it removed. Never throws. */
export async function sweepScratch(root = SCRATCH_ROOT, warn: Warn = warnOnStderr): Promise<string[]> {
  const problem = await ownRoot(root).catch((err: Error) => err.message);
  if (problem) {
    warn(`${problem}: nothing swept`);
    return [];
  }
  const swept: string[] = [];
  for (const name of await readdir(root).catch(() => [])) {
    const owner = OWNER.exec(name);
    if (owner && processStart(Number(owner[1])) === owner[2]) continue;
    if (await removeScratch(join(root, name), warn)) swept.push(join(root, name));
  }
  return swept;
}

/**
 * Removes a scratch folder whatever its training left there: folders it locked (chmod 000) are made
 * u+rwx first. True when it is gone; a failure is a warning (the next start's sweep tries again).
 */
export async function removeScratch(dir: string, warn: Warn = warnOnStderr): Promise<boolean> {
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await remove().catch(async () => {
      await unlock(dir);
      await remove();
    });
    return true;
  } catch (err) {
    warn(`could not remove the scratch folder ${dir}: ${(err as Error).message}`);
    return false;
  }
}

/**
 * Folders u+rwx, all the way down. lstat then chmod (Node has no lchmod) is safe here because no box
 * is alive to swap a folder for a link: a training's box is dead when its scratch is removed, and a
 * dead worker's boxes died with it.
 */
async function unlock(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st?.isDirectory()) return;
  if ((st.mode & 0o700) !== 0o700) await chmod(path, st.mode | 0o700).catch(() => {});
  for (const name of await readdir(path).catch(() => [])) await unlock(join(path, name));
}

/** A fresh directory for one training, named after its experiment for whoever looks at the disk (or /proc). */
export async function newScratch(experimentId: string, root = SCRATCH_ROOT): Promise<string> {
  return mkdtemp(join(await workerScratch(root), `autoresearch-${experimentId.replace(/[^\w.-]/g, '_')}-`));
}

/**
 * Copies the tracked files of `source` (a checkout, or what a training left) into `dir` and writes
 * the candidate's editable files over them, calling `progress(done, total)` every few hundred files:
 * a large repo takes a while. Regular files only, read as `files.ts` reads what a box touched; why a
 * file could not be copied (`prepare.py is a FIFO`), or null.
 */
export async function materialize(
  source: string,
  paths: string[],
  input: Pick<TrainingInput, 'files'>,
  dir: string,
  progress: (done: number, total: number) => void = () => {},
): Promise<string | null> {
  const read = boxFiles(source);
  for (const [i, path] of paths.entries()) {
    const file = await read(path);
    if (file.kind === 'refused') return file.why;
    if (file.kind === 'missing') return `${path} is missing`;
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), file.content);
    await chmod(join(dir, path), file.mode);
    if ((i + 1) % PROGRESS_EVERY_FILES === 0) progress(i + 1, paths.length);
  }
  for (const [path, content] of Object.entries(input.files)) await writeFile(join(dir, path), content);
  progress(paths.length, paths.length);
  return null;
}
