// Reading what a box could have touched. A training's scratch is written by hostile code, which can
// leave a FIFO where a harness file was (a read blocks forever), a link to /dev/zero (a read never
// ends) or a link out of the scratch: such a file is named, never opened.
import { constants, type Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

// Harness files are source and small configuration (the shipped targets' largest is 22 KB); data
// belongs in the cache, and GitHub itself warns at 50 MB. One read costs the worker at most this.
export const MAX_FILE_BYTES = 64 << 20;
// A file swapped after the lstat cannot lead elsewhere (a link) or block the worker (a FIFO).
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export type BoxFile =
  | { kind: 'file'; content: Buffer; mode: number }
  | { kind: 'missing' }
  | { kind: 'refused'; why: string }; // e.g. `prepare.py is a FIFO`

/** What a file that is not a regular one is, in words, or null for a regular file. */
function oddKind(st: Stats): string | null {
  if (st.isFile()) return null;
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return st.isDirectory() ? 'a directory' : 'not a regular file';
}

/**
 * A reader of regular files under `root` by relative path. Every folder on the way must be a real
 * folder, not a link (each is checked once per reader); the file must be regular and at most
 * `maxBytes`.
 */
export function boxFiles(root: string, maxBytes = MAX_FILE_BYTES): (path: string) => Promise<BoxFile> {
  const folders = new Map<string, string | null>(); // folder → why it is refused, or null
  async function folderProblem(dir: string): Promise<string | null> {
    if (dir === '.') return null;
    if (!folders.has(dir)) {
      const above = await folderProblem(dirname(dir));
      const st = above ? null : await lstat(join(root, dir)).catch(() => null); // gone: the file is missing
      const odd = st && !st.isDirectory() ? oddKind(st) : null;
      folders.set(dir, above ?? (odd && `${dir} is ${odd}`));
    }
    return folders.get(dir) ?? null;
  }
  return async (path) => {
    const folder = await folderProblem(dirname(path));
    if (folder) return { kind: 'refused', why: folder };
    const st = await lstat(join(root, path)).catch(() => null);
    if (!st) return { kind: 'missing' };
    return readRegular(join(root, path), path, st, maxBytes);
  };
}

async function readRegular(file: string, path: string, st: Stats, maxBytes: number): Promise<BoxFile> {
  const refused = (why: string): BoxFile => ({ kind: 'refused', why: `${path} ${why}` });
  const problem = (seen: Stats) => {
    const odd = oddKind(seen);
    return odd ? `is ${odd}` : seen.size > maxBytes ? `is over ${maxBytes >> 20} MB` : null;
  };
  if (problem(st)) return refused(problem(st)!);
  const handle = await open(file, OPEN_FLAGS).catch((err: NodeJS.ErrnoException) => err);
  if (handle instanceof Error) {
    return handle.code === 'ENOENT' ? { kind: 'missing' } : refused(`cannot be opened (${handle.code})`);
  }
  try {
    const opened = await handle.stat(); // what was opened, whatever the path names now
    if (problem(opened)) return refused(problem(opened)!);
    // A file still growing is read to one byte past the size it had, never without bound.
    const content = Buffer.alloc(opened.size + 1);
    let length = 0;
    while (length < content.length) {
      const { bytesRead } = await handle.read(content, length, content.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) return refused(`is over ${maxBytes >> 20} MB`);
    return { kind: 'file', content: content.subarray(0, length), mode: opened.mode & 0o777 }; // no setuid copies
  } finally {
    await handle.close();
  }
}
