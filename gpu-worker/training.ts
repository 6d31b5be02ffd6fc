// The training activity: check what it is asked, materialize a scratch copy of this worker's checkout
// with the candidate's editable files, check the harness, run the command in its box with a clean
// environment, heartbeat throughout, and report the parsed summary. The command's own failures, and
// inputs the worker refuses, are results, never exceptions.
import { Context } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import { PROGRAM_FILE, type Heartbeat, type TrainingInput, type TrainingResult } from '../workflows/types';
import { runCommand, type RunOutcome } from './runner';
import { BOX_HOME, bwrapArgs, findBwrap, planBox } from './sandbox';
import { materialize, newScratch, SCRATCH_ROOT } from './scratch';
import { parseProgress, parseSummary } from './summary';

const HEARTBEAT_EVERY_MS = 5_000; // well inside the workflow's 30 s heartbeat timeout, in every phase
const LOG_TAIL_CHARS = 4_000; // what travels back in the result: payloads stay small
const HARNESS_MODIFIED = 'the training command modified the harness; its score is not comparable';
const NOT_FINITE = 'val_bpb is not finite (NaN or inf)';
// The only variables a training command inherits: no API keys, tokens or cloud credentials.
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'AUTORESEARCH_CACHE'];

export interface Slot {
  name: string; // worker identity, e.g. host-slot0
  checkout: string; // this worker's clone of the research repo
  cudaVisibleDevices?: string; // the GPU this slot owns
  pathPrefix?: string; // a bin directory put first on PATH (the shipped targets' Python environment)
  sandbox?: boolean; // default true: the command runs in a bubblewrap box; false only with --no-sandbox
  network?: boolean; // the box shares the host's network (gpu-worker --network)
  scratchRoot?: string; // where scratch copies go (default SCRATCH_ROOT)
}

type EnvInput = Pick<TrainingInput, 'experimentId' | 'budgetSeconds' | 'seed'>;

export function trainingEnv(slot: Slot, input: EnvInput, from = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) if (from[key] !== undefined) env[key] = from[key]!;
  if (slot.pathPrefix) env.PATH = `${slot.pathPrefix}:${env.PATH ?? '/usr/bin:/bin'}`;
  if (slot.sandbox !== false) {
    env.HOME = BOX_HOME; // the worker's HOME holds its keys; the box's is empty
    delete env.TMPDIR; // the box has a private /tmp; the worker's TMPDIR is not there
  }
  env.AUTORESEARCH_TIME_BUDGET = String(input.budgetSeconds);
  env.AUTORESEARCH_EXPERIMENT_ID = input.experimentId;
  env.AUTORESEARCH_SEED = String(input.seed);
  env.CUDA_VISIBLE_DEVICES = slot.cudaVisibleDevices ?? '';
  env.PYTHONUNBUFFERED = '1'; // progress lines arrive as they are printed
  return env;
}

async function trackedFiles(checkout: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('git', ['ls-files', '-z'], { cwd: checkout, maxBuffer: 64 << 20 });
  return stdout.split('\0').filter(Boolean);
}

/**
 * Why the worker refuses an input, or null. The editable files must be tracked files of the checkout
 * (so no `..`, no absolute path, nothing under .git) and not program.md; the rest is the harness,
 * whose digest is checked on the files themselves.
 */
export function refusal(input: Pick<TrainingInput, 'files' | 'timeoutMs' | 'budgetSeconds'>, tracked: string[]) {
  const known = new Set(tracked);
  for (const path of Object.keys(input.files)) {
    const shown = JSON.stringify(path);
    const escapes = path.startsWith('/') || posix.normalize(path) !== path || path.split('/').includes('..');
    if (escapes) return `files names ${shown} outside the checkout`;
    if (path === '.git' || path.startsWith('.git/')) return `files names ${shown} inside .git`;
    if (path === PROGRAM_FILE) return `files names ${shown}, the research instructions, not an editable file`;
    if (!known.has(path)) return `files names ${shown}, which is not a tracked file of the checkout`;
  }
  const { timeoutMs, budgetSeconds } = input;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return `timeoutMs ${timeoutMs} is not a positive number`;
  if (!(budgetSeconds >= 0)) return `budgetSeconds ${budgetSeconds} is not a number of seconds`;
  return null;
}

async function digestOf(dir: string, paths: string[], editable: string[]): Promise<string> {
  const entries = [];
  for (const path of paths.filter((p) => isHarnessPath(p, editable))) {
    const content = await readFile(`${dir}/${path}`).catch(() => Buffer.from(`missing ${path}`));
    entries.push({ path, blob: gitBlobId(content) });
  }
  return harnessDigest(entries, editable);
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

/**
 * Heartbeats from the first moment to the last: copying a large checkout, digesting it and
 * removing it take time too, and a silent activity past its heartbeat timeout is retried.
 */
function heartbeats(ctx: Context) {
  let progress: Heartbeat = { elapsed: 0 };
  let started: number | null = null; // when the command started: elapsed counts from there
  const elapsed = () => (started === null ? 0 : Math.round((Date.now() - started) / 1000));
  const beat = () => ctx.heartbeat({ ...progress, elapsed: elapsed() });
  beat();
  const ticker = setInterval(beat, HEARTBEAT_EVERY_MS);
  return {
    beat,
    commandStarted: () => (started = Date.now()),
    progress(line: string) {
      const parsed = parseProgress(line);
      if (!parsed) return;
      progress = { ...parsed, elapsed: 0 };
      beat(); // the SDK throttles heartbeats; fresh progress should not wait for the ticker
    },
    stop: () => clearInterval(ticker),
  };
}
type Heartbeats = ReturnType<typeof heartbeats>;

/** One training in one slot: refusal check, scratch copy, harness check, the command in its box, summary. */
async function trainIn(slot: Slot, input: TrainingInput): Promise<TrainingResult> {
  const hb = heartbeats(Context.current());
  const result = (fields: Partial<TrainingResult>): TrainingResult => ({
    exitCode: null, timedOut: false, metrics: {}, seconds: 0, logTail: '', worker: slot.name,
    sandboxed: slot.sandbox !== false, ...fields,
  });
  try {
    const paths = await trackedFiles(slot.checkout);
    const refused = refusal(input, paths);
    if (refused) return result({ problem: `refused: ${refused}` });
    const dir = await newScratch(input.experimentId, slot.scratchRoot);
    try {
      await materialize(slot.checkout, paths, input, dir, hb.beat);
      const harnessChanged = async () => (await digestOf(dir, paths, Object.keys(input.files))) !== input.harnessDigest;
      if (await harnessChanged()) return result({ problem: harnessMismatch(slot) });
      const outcome = await runBoxed(slot, input, dir, hb);
      const summary = parseSummary(outcome.tail);
      const { exitCode, timedOut, seconds } = outcome;
      const logTail = outcome.tail.slice(-LOG_TAIL_CHARS);
      const fields = { exitCode, timedOut, seconds, metrics: summary.metrics, logTail };
      if (await harnessChanged()) return result({ ...fields, metrics: {}, problem: HARNESS_MODIFIED });
      if (summary.nonFinite.includes('val_bpb')) return result({ ...fields, problem: NOT_FINITE });
      return result(fields);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    hb.stop();
  }
}

function harnessMismatch(slot: Slot): string {
  return `harness mismatch: the checkout of ${slot.name} (${slot.checkout}) differs from the run's harness; ` +
    "update it to the run's base commit";
}

/** The command in its box (unless --no-sandbox); a cancelled activity rethrows once the box is dead. */
async function runBoxed(slot: Slot, input: TrainingInput, dir: string, hb: Heartbeats): Promise<RunOutcome> {
  const ctx = Context.current();
  const env = trainingEnv(slot, input);
  const box = slot.sandbox === false ? undefined : [findBwrap() ?? 'bwrap', ...bwrapArgs(await planBox({
    scratch: dir, scratchRoot: slot.scratchRoot ?? SCRATCH_ROOT, checkout: slot.checkout, pathPrefix: slot.pathPrefix,
    network: Boolean(slot.network), env,
  }))];
  hb.commandStarted();
  const outcome = await runCommand(input.command, {
    cwd: dir, env, box, timeoutMs: input.timeoutMs, signal: ctx.cancellationSignal, onLine: hb.progress,
  });
  if (outcome.aborted) await ctx.cancelled;
  return outcome;
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;

export function slotName(index: number): string {
  return `${hostname()}-slot${index}`;
}
