// Shared fixtures for the integration tests: a real dev server, real git repos, the real CLI.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { after, before } from 'node:test';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker, type GpuWorkerOptions } from '../gpu-worker/worker';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import type { RunConfig } from '../workflows/types';
import { quietWorkerLogs } from '../scripts/connect';
import { temporalCli } from '../scripts/provision';
import { fakeOpenAI, type FakeOpenAI } from './fake-openai';

export const ROOT = join(__dirname, '..');
export const CLI = join(ROOT, 'scripts', 'autoresearch.js');

let quiet = false;
/** Worker chatter off: test output should be the test runner's. */
export function quietWorkers(): void {
  if (!quiet) quietWorkerLogs();
  quiet = true;
}

export async function devServer(): Promise<TestWorkflowEnvironment> {
  quietWorkers();
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: await temporalCli() }, searchAttributes: ALL_SEARCH_ATTRIBUTES },
  });
}

const live: Worker[] = [];

/** The control worker and a GPU worker, in this process, until `until` settles (either way). */
export async function runWorkers(connection: NativeConnection, gpu: GpuWorkerOptions, until: Promise<unknown>): Promise<void> {
  const workers = [await createControlWorker(connection, 'default'), await createGpuWorker(connection, 'default', gpu)];
  live.push(...workers);
  await Promise.all(workers.map((w) => w.runUntil(until.catch(() => undefined))));
}

/** For `after`: a failed test can leave its run going, and its workers must not keep the file alive. */
export async function closeDevServer(env: TestWorkflowEnvironment | undefined): Promise<void> {
  for (const worker of live.splice(0)) if (worker.getState() === 'RUNNING') worker.shutdown();
  await env?.teardown();
}

const GIT_ENV = { GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@localhost', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@localhost' };

export function gitIn(repo: string, ...args: string[]): string {
  const out = spawnSync('git', args, { cwd: repo, env: { ...process.env, ...GIT_ENV }, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`git ${args.join(' ')}: ${out.stderr}`);
  return out.stdout.trim();
}

/** A committed research repo holding `files` (program.md added when absent). */
export async function makeRepo(files: Record<string, string>): Promise<string> {
  const repo = await mkdtemp(join(tmpdir(), 'autoresearch-repo-'));
  const all = { 'program.md': '# research\nMake val_bpb lower.\n', '.gitignore': 'results.tsv\nresults.jsonl\n', ...files };
  for (const [path, content] of Object.entries(all)) {
    await mkdir(dirname(join(repo, path)), { recursive: true });
    await writeFile(join(repo, path), content);
  }
  gitIn(repo, 'init', '--quiet', '--initial-branch=main');
  gitIn(repo, 'add', '--all');
  gitIn(repo, 'commit', '--quiet', '-m', 'research repo');
  return repo;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `autoresearch ...args` as a user would, in its own process. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

export interface Running {
  child: ChildProcess;
  output: () => string;
}

/** `autoresearch <args>` as a long-lived process, its stdout and stderr kept together. */
export function serve(args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  return { child, output: () => output };
}

export async function endProcess(running: Running): Promise<void> {
  if (running.child.exitCode !== null) return;
  const exited = new Promise((done) => running.child.once('exit', done));
  running.child.kill('SIGTERM');
  await exited;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A training script whose one hyperparameter picks its behaviour: better, worse, crash, hang, no metric, NaN. */
export const BEHAVIOUR_SCRIPT = `X = 4  # picks this candidate's behaviour
import sys, time
outcome = {4: 1.0, 8: 0.8, 2: 1.2, 16: "crash", 1: "hang", 32: "missing", 64: "nan"}[X]
print("step 00001 (50.0%) | loss: 2.500000", flush=True)
if outcome == "crash":
    sys.exit("boom: X is too big")
if outcome == "hang":
    time.sleep(600)
print("---")
if outcome == "nan":
    print("val_bpb:          nan")
elif outcome != "missing":
    print(f"val_bpb:          {outcome:.6f}")
print("training_seconds: 0.1")
print("peak_vram_mb:     2048.0")
`;

/** A study of train.py in `repo`, one slot, the sweep proposer, every gain kept: `extra` says what differs. */
export function studyConfig(repo: string, tag: string, extra: Partial<RunConfig> = {}): RunConfig {
  return {
    tag,
    repo,
    proposer: 'sweep',
    editable: ['train.py'],
    command: 'python3 train.py',
    timeoutMs: 30_000,
    budgetSeconds: 1,
    parallel: 1,
    seed: 3,
    minImprovement: 0,
    ...extra,
  };
}

/** A dev server and a local OpenAI-compatible server for one test file, handed to `use` and torn down after it. */
export function withServers(use: (env: TestWorkflowEnvironment, fake: FakeOpenAI) => void, apiKey?: string): void {
  let env: TestWorkflowEnvironment | undefined;
  let fake: FakeOpenAI | undefined;
  before(async () => {
    env = await devServer();
    fake = await fakeOpenAI(apiKey);
    use(env, fake);
  });
  after(async () => {
    await fake?.close();
    await closeDevServer(env);
  });
}
