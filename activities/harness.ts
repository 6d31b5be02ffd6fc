// The harness digest: one hash over every tracked file a proposer may not change, so an experiment
// that ran against a different harness (a stale GPU checkout, a command that rewrote prepare.py) is
// rejected instead of scored. Both sides hash (path, git blob id) pairs, so the control worker can read
// them from a commit's tree and a GPU worker from files on disk, and get the same answer.
import { createHash } from 'node:crypto';
import { PROGRAM_FILE } from '../workflows/types';

export interface TreeEntry {
  path: string;
  blob: string; // git blob id (sha1 of "blob <size>\0<content>")
}

export function isHarnessPath(path: string, editable: string[]): boolean {
  return path !== PROGRAM_FILE && !editable.includes(path);
}

export function gitBlobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function harnessDigest(entries: TreeEntry[], editable: string[]): string {
  const hash = createHash('sha256');
  const harness = entries.filter((e) => isHarnessPath(e.path, editable)).sort((a, b) => (a.path < b.path ? -1 : 1));
  for (const e of harness) hash.update(`${e.path}\0${e.blob}\n`);
  return hash.digest('hex').slice(0, 16);
}
