// The morning's questions, on the control side: which commits to train again (the baseline and the best
// for `verify`; the best without each kept change for `ablate`; the refs named to `compare`), and where
// their answers are written.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BRANCH_PREFIX,
  CANDIDATE_REF_PREFIX,
  experimentId,
  gpuQueueFor,
  type Arm,
  type RunConfig,
} from '../workflows/types';
import { commitFiles, compareAndSwapRef, git, readFileAt, resolve, rootCommit, treeEntries } from './git';
import { harnessDigest } from './harness';
import { findKnobs } from './sweep';
import { RepoError } from './repo';
import { resultsDir } from './results';

/** What every training of a morning question shares: the harness it must find, the workers that hold the repo. */
export interface TrainingSetup {
  harnessDigest: string;
  gpuQueue: string;
}

export interface MorningSetup extends TrainingSetup {
  baseline: string; // the run's baseline commit
  best: string; // the branch tip: the last keep
}

async function readFiles(config: RunConfig, commit: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const path of config.editable) files[path] = await readFileAt(config.repo, commit, path);
  return files;
}

/** Where a finished run stands: its baseline, its best and the harness both were trained with. */
export async function morningSetup(config: RunConfig): Promise<MorningSetup> {
  const baseline = await resolve(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/${experimentId(config.tag, 0)}`);
  const best = await resolve(config.repo, `refs/heads/${BRANCH_PREFIX}${config.tag}`);
  if (!baseline || !best)
    throw new RepoError(
      `${config.repo} has no run ${config.tag} (no baseline ref or branch ${BRANCH_PREFIX}${config.tag})`,
    );
  const digest = harnessDigest(await treeEntries(config.repo, baseline), config.editable);
  return { baseline, best, harnessDigest: digest, gpuQueue: gpuQueueFor(await rootCommit(config.repo, baseline)) };
}

/** An experiment named by its id (`tiny1-3`): the commit its own ref holds, or null. */
function experimentCommit(repo: string, id: string): Promise<string | null> {
  const tag = /^(.+)-\d+$/.exec(id)?.[1];
  return tag ? resolve(repo, `${CANDIDATE_REF_PREFIX}${tag}/${id}`) : Promise.resolve(null);
}

/**
 * `compare`: each ref resolved to its commit (an experiment id names its own commit), with its editable files. Scores are comparable only under one
 * harness and one set of GPU workers, so a ref that changes the harness, or comes from another history, is refused.
 */
export async function compareArms(config: RunConfig, refs: string[]): Promise<{ setup: TrainingSetup; arms: Arm[] }> {
  if (refs.length < 2) throw new RepoError(`compare: name at least two refs of ${config.repo}`);
  if (new Set(refs).size < refs.length) throw new RepoError(`compare: a ref is named twice (${refs.join(' ')})`);
  const arms: Arm[] = [];
  let setup: TrainingSetup | null = null;
  for (const ref of refs) {
    const commit = ref.startsWith('-') ? null : (await resolve(config.repo, ref)) ?? (await experimentCommit(config.repo, ref));
    if (!commit) throw new RepoError(`compare: ${ref} is not a branch, tag, commit or experiment (TAG-N) of ${config.repo}`);
    const own = {
      harnessDigest: harnessDigest(await treeEntries(config.repo, commit), config.editable),
      gpuQueue: gpuQueueFor(await rootCommit(config.repo, commit)),
    };
    setup ??= own;
    if (own.gpuQueue !== setup.gpuQueue) throw new RepoError(`compare: ${ref} does not share ${refs[0]}'s history`);
    if (own.harnessDigest !== setup.harnessDigest)
      throw new RepoError(
        `compare: ${ref} changes the harness against ${refs[0]} (files other than ${config.editable.join(', ')}): their scores cannot be compared`,
      );
    arms.push({ name: ref, commit, files: await readFiles(config, commit) });
  }
  return { setup: setup!, arms };
}

/**
 * `sensitivity`: the best, then for each knob of its editable files (or those named) the best with that knob
 * moved to each other value of its grid, each committed under refs/autoresearch/<tag>/sensitivity/.
 */
export async function sensitivityArms(
  config: RunConfig,
  setup: MorningSetup,
  named: string[] | null,
  points: number,
): Promise<{ arms: Arm[]; knobs: { name: string; value: string; grid: string[] }[] }> {
  const files = await readFiles(config, setup.best);
  const arms: Arm[] = [{ name: 'best', commit: setup.best, files }];
  const knobs: { name: string; value: string; grid: string[] }[] = [];
  const found = Object.entries(files).flatMap(([path, source]) => findKnobs(source, points).map((k) => ({ path, source, k })));
  for (const name of named ?? [])
    if (!found.some((f) => f.k.name === name))
      throw new RepoError(`sensitivity: no knob ${name} in ${config.editable.join(', ')} (knobs: ${found.map((f) => f.k.name).join(', ') || 'none'})`);
  if (found.length === 0) throw new RepoError(`sensitivity: no UPPER_CASE = number or True/False knob in ${config.editable.join(', ')}`);
  for (const { path, source, k } of found) {
    if ((named && !named.includes(k.name)) || knobs.some((seen) => seen.name === k.name)) continue;
    knobs.push({ name: k.name, value: k.literal, grid: k.grid });
    for (const value of k.grid.filter((v) => v !== k.literal)) {
      const moved = { ...files, [path]: source.slice(0, k.start) + value + source.slice(k.start + k.literal.length) };
      const commit = await commitFiles(config.repo, setup.best, moved, `sensitivity: ${k.name} ${k.literal} -> ${value}\n`);
      await git(config.repo).raw(['update-ref', `${CANDIDATE_REF_PREFIX}${config.tag}/sensitivity/${k.name}-${value}`, commit]);
      arms.push({ name: `${k.name} = ${value}`, commit, files: moved, knob: { name: k.name, value } });
    }
  }
  return { arms, knobs };
}

/** `verify`: the baseline and the best, each to be trained again. */
export async function verifyArms(config: RunConfig, setup: MorningSetup): Promise<Arm[]> {
  return [
    { name: 'baseline', commit: setup.baseline, files: await readFiles(config, setup.baseline) },
    { name: 'best', commit: setup.best, files: await readFiles(config, setup.best) },
  ];
}

/**
 * `ablate`: the best, then for each kept change on the branch (oldest first) the best with that change
 * taken out (its diff applied in reverse by a three-way merge). A change later keeps built on may no
 * longer come out cleanly: it is listed with that problem instead of an arm.
 */
export async function ablationArms(config: RunConfig, setup: MorningSetup): Promise<{ arms: Arm[]; skipped: Arm[] }> {
  const kept = (
    await git(config.repo).raw(['rev-list', '--first-parent', '--reverse', `${setup.baseline}..${setup.best}`])
  )
    .split('\n')
    .filter(Boolean);
  const arms: Arm[] = [{ name: 'best', commit: setup.best, files: await readFiles(config, setup.best) }];
  const skipped: Arm[] = [];
  for (const change of kept) {
    const description = (await git(config.repo).raw(['log', '-1', '--format=%s', change])).trim();
    const id = (
      await git(config.repo).raw(['log', '-1', '--format=%(trailers:key=Experiment-Id,valueonly)', change])
    ).trim();
    const name = `without ${id || change.slice(0, 7)}: ${description}`;
    const files = await revertedFiles(config, setup.best, change);
    if (typeof files === 'string') {
      skipped.push({ name, commit: change, files: {}, change: id || change.slice(0, 7), problem: files });
      continue;
    }
    const commit = await commitFiles(
      config.repo,
      setup.best,
      files,
      `ablation: ${setup.best.slice(0, 7)} without ${description}\n`,
    );
    await compareAndSwapRef(
      config.repo,
      `${CANDIDATE_REF_PREFIX}${config.tag}/ablate/${id || change.slice(0, 12)}`,
      commit,
      null,
    );
    arms.push({ name, commit, files, change: id || change.slice(0, 7) });
  }
  return { arms, skipped };
}

/**
 * The best's editable files with `change` taken out, or why that cannot be done cleanly. Each hunk of its
 * diff is undone by search and replace where its new lines still occur once in the best (so neighbouring
 * later edits do not get in the way); otherwise a three-way merge tries, and a conflict is reported.
 */
async function revertedFiles(
  config: RunConfig,
  best: string,
  change: string,
): Promise<Record<string, string> | string> {
  const files: Record<string, string> = {};
  for (const path of config.editable) {
    const current = await readFileAt(config.repo, best, path);
    const diff = await git(config.repo).raw(['diff', '-U0', '--no-color', `${change}^`, change, '--', path]);
    const undone = undoHunks(current, diff) ?? (await mergeBack(config, best, change, path));
    if (undone === null) return `no longer reverts cleanly in ${path}: later keeps built on it`;
    files[path] = undone;
  }
  return files;
}

/** Undoes each hunk of a zero-context diff by search and replace, or null when one cannot be found once. */
export function undoHunks(current: string, diff: string): string | null {
  let out = current;
  for (const hunk of diff.split(/^@@.*@@.*$/m).slice(1)) {
    const lines = hunk.split('\n').filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l));
    const added = lines
      .filter((l) => l.startsWith('+'))
      .map((l) => l.slice(1) + '\n')
      .join('');
    const removed = lines
      .filter((l) => l.startsWith('-'))
      .map((l) => l.slice(1) + '\n')
      .join('');
    if (added === '') return null; // a pure deletion has nothing to search for
    const at = wholeLinesAt(out, added);
    if (at.length !== 1) return null;
    out = out.slice(0, at[0]) + removed + out.slice(at[0] + added.length);
  }
  return out;
}

/** Where `lines` occurs as whole lines of `text` (so `X = 8` is not found inside `MAX = 8`). */
function wholeLinesAt(text: string, lines: string): number[] {
  const found: number[] = [];
  for (let i = text.indexOf(lines); i >= 0; i = text.indexOf(lines, i + 1))
    if (i === 0 || text[i - 1] === '\n') found.push(i);
  return found;
}

/** A three-way merge that applies (change → its parent) onto the best; null on a conflict. */
async function mergeBack(config: RunConfig, best: string, change: string, path: string): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'autoresearch-ablate-'));
  try {
    const [current, after, before] = ['current', 'after', 'before'].map((name) => join(dir, name));
    await writeFile(current, await readFileAt(config.repo, best, path));
    await writeFile(after, await readFileAt(config.repo, change, path));
    await writeFile(before, await readFileAt(config.repo, `${change}^`, path));
    // git merge-file exits with the number of conflicts.
    return await promisify(execFile)('git', ['merge-file', '-p', current, after, before]).then(
      ({ stdout }) => stdout,
      () => null,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** verdict.json, ablation.json, comparison.json or sensitivity.json beside the run's results. */
export async function writeMorning(
  config: RunConfig,
  name: 'verdict.json' | 'ablation.json' | 'comparison.json' | 'sensitivity.json',
  value: unknown,
): Promise<string> {
  const path = join(resultsDir(config.repo, config.tag), name);
  await mkdir(resultsDir(config.repo, config.tag), { recursive: true });
  await writeFile(path, JSON.stringify(value, null, 2) + '\n');
  return path;
}
