// `autoresearch init --target NAME PATH`: a ready-to-run research repo from a shipped target.
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { git } from '../activities/git';
import { RESULTS_ROOT } from '../activities/results';
import { PROGRAM_FILE } from '../workflows/types';
import { UserError } from './errors';
import { pythonEnv, run, targetPackages } from './provision';

const TARGETS_DIR = join(__dirname, '..', 'gpu-worker', 'targets');
const DEFAULT_PROGRAM = join(__dirname, '..', PROGRAM_FILE);

export async function targets(): Promise<string[]> {
  return (await readdir(TARGETS_DIR, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
}

export async function initRepo(target: string, path: string, log: (line: string) => void = console.log): Promise<string> {
  const available = await targets();
  if (!available.includes(target)) throw new UserError(`unknown target "${target}" (available: ${available.join(', ')})`);
  const repo = resolve(path);
  if (existsSync(repo) && (await readdir(repo)).length > 0) throw new UserError(`${repo} already exists and is not empty`);
  await mkdir(repo, { recursive: true });
  const source = join(TARGETS_DIR, target);
  for (const entry of await readdir(source, { withFileTypes: true })) {
    if (entry.isFile() || entry.isSymbolicLink()) await copyFile(join(source, entry.name), join(repo, entry.name));
  }
  await copyFile(DEFAULT_PROGRAM, join(repo, PROGRAM_FILE));
  await writeFile(join(repo, '.gitignore'), `/${RESULTS_ROOT}/\n__pycache__/\n`);
  const g = git(repo);
  await g.raw(['init', '--quiet', '--initial-branch=main']);
  await g.raw(['add', '--all']);
  await g.raw(['commit', '--quiet', '-m', `${target} target from autoresearch`]);
  log(`initialized ${repo} from the ${target} target; preparing its data`);
  await prepare(repo, await pythonEnv(log, targetPackages(target)), log);
  return repo;
}

/** Runs the target's prepare step once, so the first experiment does not pay for it. */
async function prepare(repo: string, pythonBin: string, log: (line: string) => void): Promise<void> {
  if (!existsSync(join(repo, 'prepare.py'))) return;
  const env = { ...process.env, PATH: `${pythonBin}:${process.env.PATH}` };
  await run('python', ['prepare.py'], log, { cwd: repo, env }).catch((err: Error) => {
    throw new UserError(`prepare.py failed in ${repo} (${err.message}); its output is above`);
  });
}

/** `init`'s closing words: the three processes a study needs, each in its own terminal, in order. */
export function nextSteps(repo: string): string {
  return [
    `ready: ${repo}`,
    'next, each in its own terminal (with `npx autoresearch server` running, or TEMPORAL_ADDRESS set):',
    '  npx autoresearch worker',
    `  npx autoresearch gpu-worker --repo ${repo}`,
    `  npx autoresearch start --repo ${repo} --tag TAG --max-experiments 20`,
  ].join('\n');
}
