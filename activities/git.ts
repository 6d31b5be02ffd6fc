// Git plumbing on the research repo. Candidates are built with a private index and commit-tree, so the
// user's working tree, index and checked-out branch are never touched.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { TreeEntry } from './harness';

// Candidate commits carry this identity, whoever runs the worker: their provenance is plain in `git log`.
const IDENTITY = ['user.name=autoresearch', 'user.email=autoresearch@localhost'];
const ZERO_SHA = '0000000000000000000000000000000000000000';

/**
 * simple-git on the repo. Extra environment (a private index) comes with only PATH and HOME:
 * simple-git refuses an inherited environment holding EDITOR or PAGER, as npm scripts do.
 */
export function git(repo: string, env?: Record<string, string>): SimpleGit {
  const g = simpleGit(repo, { config: IDENTITY });
  return env ? g.env({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...env }) : g;
}

/** Resolves a ref to a commit id, or null when it does not exist. */
export async function resolve(repo: string, ref: string): Promise<string | null> {
  try {
    return (await git(repo).raw(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])).trim() || null;
  } catch {
    return null;
  }
}

export async function treeEntries(repo: string, commit: string): Promise<TreeEntry[]> {
  const out = await git(repo).raw(['ls-tree', '-r', '-z', commit]);
  return out
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const [meta, path] = line.split('\t');
      return { path, blob: meta.split(' ')[2] };
    });
}

export async function readFileAt(repo: string, commit: string, path: string): Promise<string> {
  return git(repo).show([`${commit}:${path}`]);
}

/** Tracked files with uncommitted changes (untracked files such as results.tsv do not count). */
export async function dirtyFiles(repo: string): Promise<string[]> {
  const status = await git(repo).status(['--untracked-files=no']);
  return status.files.map((f) => f.path);
}

/** Creates a commit with `files` replaced on top of `parent`, without touching any working tree. */
export async function commitFiles(repo: string, parent: string, files: Record<string, string>, message: string): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), 'autoresearch-index-'));
  try {
    const g = git(repo, { GIT_INDEX_FILE: join(scratch, 'index') });
    await g.raw(['read-tree', parent]);
    for (const [path, content] of Object.entries(files)) {
      const file = join(scratch, 'blob');
      await writeFile(file, content);
      const blob = (await g.raw(['hash-object', '-w', '--no-filters', file])).trim();
      const mode = (await g.raw(['ls-tree', parent, '--', path])).split(' ')[0] || '100644';
      await g.raw(['update-index', '--add', '--cacheinfo', `${mode},${blob},${path}`]);
    }
    const tree = (await g.raw(['write-tree'])).trim();
    return (await g.raw(['commit-tree', tree, '-p', parent, '-m', message])).trim();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Points `ref` at `to` only if it is at `from` now (ZERO_SHA: only if absent). Returns false when the
 * ref holds something else, so callers can tell a retry of their own move from someone else's.
 */
export async function compareAndSwapRef(repo: string, ref: string, to: string, from: string | null): Promise<boolean> {
  try {
    await git(repo).raw(['update-ref', ref, to, from ?? ZERO_SHA]);
    return true;
  } catch {
    return (await resolve(repo, ref)) === to;
  }
}

/** Blob ids of `path` in each commit, in one git process however many commits there are. */
export function blobIdsAt(repo: string, commits: string[], path: string): Promise<string[]> {
  const input = commits.map((c) => `${c}:${path}\n`).join('');
  return new Promise((done, fail) => {
    const child = execFile('git', ['cat-file', '--batch-check=%(objectname) %(objecttype)'], { cwd: repo, maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) return fail(err);
      done(stdout.split('\n').filter((l) => l.endsWith(' blob')).map((l) => l.split(' ')[0]));
    });
    child.stdin!.end(input);
  });
}

export async function refsUnder(repo: string, prefix: string): Promise<string[]> {
  const out = await git(repo).raw(['for-each-ref', '--format=%(objectname)', prefix]);
  return out.split('\n').filter(Boolean);
}

/**
 * What names a research repo across its clones: its root commit (the oldest, when history has
 * several). The GPU queue is derived from it, so a training only reaches a worker holding its repo.
 */
export async function rootCommit(repo: string, rev = 'HEAD'): Promise<string> {
  const roots = (await git(repo).raw(['rev-list', '--max-parents=0', rev])).split('\n').filter(Boolean);
  return roots.sort()[0];
}

/** The tree a commit points at: two commits with the same tree hold the same files. */
export async function treeOf(repo: string, commit: string): Promise<string> {
  return (await git(repo).raw(['rev-parse', `${commit}^{tree}`])).trim();
}

/** Deletes every ref matching `pattern` (a for-each-ref pattern); nothing to delete is fine. */
export async function deleteRefs(repo: string, pattern: string): Promise<void> {
  const refs = (await git(repo).raw(['for-each-ref', '--format=%(refname)', pattern])).split('\n').filter(Boolean);
  for (const ref of refs) await git(repo).raw(['update-ref', '-d', ref]);
}

/**
 * Three-way merge without a work tree: the tree of `ours` with the change from `base` to `theirs` applied, or
 * the paths that conflict. First git's merge (merge-tree --write-tree); where it conflicts only because the
 * two changes touch adjacent lines (two hyperparameters on consecutive lines), the change is applied as a
 * patch without context (apply --unidiff-zero), which still refuses a line that the other side changed.
 * Git 2.39 has no --merge-base, so `theirs`'s tree is committed on `base` first: the merge base is then `base`.
 */
export async function mergeTree(repo: string, base: string, ours: string, theirs: string): Promise<{ tree: string } | { conflicts: string[] }> {
  const g = git(repo);
  const onBase = (await g.raw(['commit-tree', `${theirs}^{tree}`, '-p', base, '-m', 'merge input'])).trim();
  const merged = await gitOut(repo, ['merge-tree', '--write-tree', '--name-only', '--no-messages', ours, onBase]);
  const [tree, ...conflicts] = merged.stdout.split('\n').filter(Boolean);
  if (merged.code === 0) return { tree };
  if (merged.code !== 1) throw new Error(`git merge-tree: ${merged.stderr}`);
  const patch = await g.raw(['diff', '--unified=0', '--full-index', '--binary', base, onBase]);
  const scratch = await mkdtemp(join(tmpdir(), 'autoresearch-merge-'));
  try {
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    await git(repo, env).raw(['read-tree', ours]);
    await writeFile(join(scratch, 'patch'), patch);
    const applied = await gitOut(repo, ['apply', '--cached', '--unidiff-zero', join(scratch, 'patch')], env);
    if (applied.code !== 0) return { conflicts };
    return { tree: (await git(repo, env).raw(['write-tree'])).trim() };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** A git command whose exit code is an answer (merge-tree's 1: conflicts), not a failure. */
function gitOut(repo: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('git', args, { cwd: repo, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}
