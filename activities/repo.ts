// Checks on a research repo, shared by `autoresearch start` (to refuse early with one clear line) and
// the run's first activity (to refuse for sure, on the host that owns the repo).
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { BRANCH_PREFIX, PROGRAM_FILE } from '../workflows/types';
import { dirtyFiles, git, resolve, treeEntries } from './git';

/** A problem with the user's repo: reported as one line, never retried. */
export class RepoError extends Error {
  override name = 'RepoError';
}

export async function checkRepo(repo: string, editable: string[]): Promise<{ head: string }> {
  const isDir = await stat(repo).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new RepoError(`research repo not found: ${repo}`);
  const top = await git(repo).raw(['rev-parse', '--show-toplevel']).then((s) => s.trim(), () => null);
  if (top === null || resolvePath(top) !== resolvePath(repo)) throw new RepoError(`${repo} is not the top of a git repository`);
  const head = await resolve(repo, 'HEAD');
  if (!head) throw new RepoError(`${repo} has no commits yet: commit the research files first`);
  const tracked = new Set((await treeEntries(repo, head)).map((e) => e.path));
  if (!tracked.has(PROGRAM_FILE)) throw new RepoError(`${repo} has no ${PROGRAM_FILE} in HEAD (the research instructions)`);
  for (const path of editable) {
    if (!tracked.has(path)) throw new RepoError(`editable file ${path} is not tracked in ${repo}`);
  }
  const dirty = await dirtyFiles(repo);
  if (dirty.length) throw new RepoError(`${repo} has uncommitted changes to tracked files (${dirty.join(', ')}): commit or stash them first`);
  return { head };
}

export async function branchOf(repo: string, tag: string): Promise<string | null> {
  return resolve(repo, `refs/heads/${BRANCH_PREFIX}${tag}`);
}
