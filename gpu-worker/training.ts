// The training activity: materialize a scratch copy of this worker's checkout with the candidate's
// editable files, check the harness, run the command with a clean environment, heartbeat its
// progress, and report the parsed summary. The command's own failures are results, never exceptions.
import { Context } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import type { Heartbeat, TrainingInput, TrainingResult } from '../workflows/types';
import { runCommand } from './runner';
import { parseProgress, parseSummary } from './summary';

const HEARTBEAT_EVERY_MS = 5_000; // well inside the workflow's 30 s heartbeat timeout
const LOG_TAIL_CHARS = 4_000; // what travels back in the result: payloads stay small
// The only variables a training command inherits: no API keys, tokens or cloud credentials.
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'AUTORESEARCH_CACHE'];

export interface Slot {
  name: string; // worker identity, e.g. host-slot0
  checkout: string; // this worker's clone of the research repo
  cudaVisibleDevices?: string; // the GPU this slot owns
  pathPrefix?: string; // a bin directory put first on PATH (the shipped targets' Python environment)
  noNetwork?: boolean; // proposed code runs without network access
}

export function trainingEnv(slot: Slot, input: Pick<TrainingInput, 'experimentId' | 'budgetSeconds'>, from = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) if (from[key] !== undefined) env[key] = from[key]!;
  if (slot.pathPrefix) env.PATH = `${slot.pathPrefix}:${env.PATH ?? '/usr/bin:/bin'}`;
  env.AUTORESEARCH_TIME_BUDGET = String(input.budgetSeconds);
  env.AUTORESEARCH_EXPERIMENT_ID = input.experimentId;
  env.CUDA_VISIBLE_DEVICES = slot.cudaVisibleDevices ?? '';
  env.PYTHONUNBUFFERED = '1'; // progress lines arrive as they are printed
  return env;
}

async function trackedFiles(checkout: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('git', ['ls-files', '-z'], { cwd: checkout, maxBuffer: 64 << 20 });
  return stdout.split('\0').filter(Boolean);
}

async function digestOf(dir: string, paths: string[], editable: string[]): Promise<string> {
  const entries = [];
  for (const path of paths.filter((p) => isHarnessPath(p, editable))) {
    const content = await readFile(join(dir, path)).catch(() => Buffer.from(`missing ${path}`));
    entries.push({ path, blob: gitBlobId(content) });
  }
  return harnessDigest(entries, editable);
}

/** A scratch copy of the checkout's tracked files with the candidate's editable files written in. */
async function materialize(checkout: string, input: TrainingInput): Promise<{ dir: string; paths: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), `autoresearch-${input.experimentId}-`));
  const paths = await trackedFiles(checkout);
  for (const path of paths) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await copyFile(join(checkout, path), join(dir, path));
    await chmod(join(dir, path), (await stat(join(checkout, path))).mode);
  }
  for (const [path, content] of Object.entries(input.files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return { dir, paths };
}

/**
 * One training per slot at a time. The worker runs at most `slots.length` activities at once, so a
 * free slot is always there to take; the pool only decides which GPU each training gets.
 */
export function createTrainingActivities(slots: Slot[]) {
  const free = [...slots];
  async function train(input: TrainingInput): Promise<TrainingResult> {
    const slot = free.shift();
    if (!slot) throw new Error('no free training slot: the worker runs more trainings than it has slots');
    try {
      return await trainIn(slot, input);
    } finally {
      free.push(slot);
    }
  }
  return { train };
}

/** One training in one slot: scratch copy, harness check, run, heartbeats, summary. */
async function trainIn(slot: Slot, input: TrainingInput): Promise<TrainingResult> {
  const ctx = Context.current();
  const editable = Object.keys(input.files);
  const { dir, paths } = await materialize(slot.checkout, input);
  const result = (fields: Partial<TrainingResult>): TrainingResult => ({
    exitCode: null, timedOut: false, metrics: {}, seconds: 0, logTail: '', worker: slot.name, ...fields,
  });
  try {
    if ((await digestOf(dir, paths, editable)) !== input.harnessDigest) {
      return result({ problem: `harness mismatch: the checkout of ${slot.name} (${slot.checkout}) differs from the run's harness; update it to the run's base commit` });
    }
    let progress: Heartbeat = { elapsed: 0 };
    const started = Date.now();
    const beat = () => ctx.heartbeat({ ...progress, elapsed: Math.round((Date.now() - started) / 1000) });
    beat();
    const ticker = setInterval(beat, HEARTBEAT_EVERY_MS);
    const outcome = await runCommand(input.command, {
      cwd: dir,
      env: trainingEnv(slot, input),
      timeoutMs: input.timeoutMs,
      signal: ctx.cancellationSignal,
      noNetwork: slot.noNetwork,
      onLine: (line) => {
        const parsed = parseProgress(line);
        if (!parsed) return;
        progress = { ...parsed, elapsed: progress.elapsed };
        beat(); // the SDK throttles heartbeats; fresh progress should not wait for the ticker
      },
    }).finally(() => clearInterval(ticker));
    if (outcome.aborted) await ctx.cancelled; // rethrows the cancellation: the process group is dead
    const summary = parseSummary(outcome.tail);
    const fields = { exitCode: outcome.exitCode, timedOut: outcome.timedOut, metrics: summary.metrics, seconds: outcome.seconds, logTail: outcome.tail.slice(-LOG_TAIL_CHARS) };
    if ((await digestOf(dir, paths, editable)) !== input.harnessDigest) {
      return result({ ...fields, metrics: {}, problem: 'the training command modified the harness; its score is not comparable' });
    }
    if (summary.nonFinite.includes('val_bpb')) return result({ ...fields, problem: 'val_bpb is not finite (NaN or inf)' });
    return result(fields);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;

export function slotName(index: number): string {
  return `${hostname()}-slot${index}`;
}
