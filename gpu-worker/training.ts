// The training activity: check what it is asked, materialize a scratch copy of this worker's checkout
// with the candidate's editable files, check the harness, run the command in its box with a clean
// environment, score it (the harness's own evaluation, where the target declares one), heartbeat
// throughout, and report the parsed summary. The command's own failures, and inputs the worker
// refuses, are results, never exceptions.
import { Context } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import { CONFIG_FILE, PROGRAM_FILE, type Heartbeat, type TrainingInput, type TrainingResult } from '../workflows/types';
import { evaluate, type BoxFor, type Evaluation } from './evaluation';
import { boxFiles } from './files';
import { defaultLimits, limitPrefix, limitReason, tmpfsBytes, type Limits } from './limits';
import { runCommand, type RunOutcome } from './runner';
import { boxCommand, boxEnv, handToBox, type BoxRequest, type Network } from './sandbox';
import { materialize, newScratch, removeScratch, SCRATCH_ROOT } from './scratch';
import { parseProgress, parseSummary, type Summary } from './summary';

const HEARTBEAT_EVERY_MS = 5_000; // well inside the workflow's 30 s heartbeat timeout, in every phase
const LOG_TAIL_CHARS = 4_000; // what travels back in the result: payloads stay small
const HARNESS_MODIFIED = 'the training command modified the harness; its score is not comparable';
const NOT_FINITE = 'val_bpb is not finite (NaN or inf)';
export const IMPLAUSIBLE = 'implausible score'; // below the target's declared floor: a scorer gamed, not a model trained
// Bits per byte. A score the training printed agrees with the harness's within this: summaries print
// six decimals (rounding up to 5e-7) and the same model scored in another process may differ in the
// last float bits; a gain worth keeping is a hundred times larger (run-to-run noise is 2e-4 or more).
export const SCORE_TOLERANCE = 1e-5;

export interface Slot {
  name: string; // worker identity, e.g. host-slot0
  checkout: string; // this worker's clone of the research repo
  cudaVisibleDevices?: string; // the GPU this slot owns, by nvidia-smi's index
  gpu?: { uuid: string; minor: number }; // that GPU as the driver names it, where known: its box shows no other
  pathPrefix?: string; // a bin directory put first on PATH (the shipped targets' Python environment)
  sandbox?: boolean; // default true: the command runs in a bubblewrap box; false only with --no-sandbox
  network?: Network; // the box's network (gpu-worker --network: egress only; --host-network: the host's)
  networkAllow?: string[]; // CIDRs an egress box may reach besides the internet (--network-allow)
  scratchRoot?: string; // where scratch copies go (default SCRATCH_ROOT)
  limits?: Limits; // memory, processes, file size: on every training, boxed or not (default: one slot's)
  syscallFilter?: string; // the box's seccomp filter (BPF), built at the worker's start; never with --no-sandbox
}

const limitsOf = (slot: Slot) => slot.limits ?? defaultLimits(1);

type EnvInput = Pick<TrainingInput, 'experimentId' | 'budgetSeconds' | 'seed'>;

export function trainingEnv(slot: Slot, input: EnvInput, from = process.env): Record<string, string> {
  const env = boxEnv(slot.pathPrefix, slot.sandbox !== false, from);
  env.AUTORESEARCH_TIME_BUDGET = String(input.budgetSeconds);
  env.AUTORESEARCH_EXPERIMENT_ID = input.experimentId;
  env.AUTORESEARCH_SEED = String(input.seed);
  // By UUID where known: in a box that shows one GPU node, CUDA may number that GPU 0, whatever its index.
  env.CUDA_VISIBLE_DEVICES = slot.gpu?.uuid ?? slot.cudaVisibleDevices ?? '';
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
    if (path === CONFIG_FILE) return `files names ${shown}, the harness's configuration, not an editable file`;
    if (!known.has(path)) return `files names ${shown}, which is not a tracked file of the checkout`;
  }
  const { timeoutMs, budgetSeconds } = input;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return `timeoutMs ${timeoutMs} is not a positive number`;
  if (!(budgetSeconds >= 0)) return `budgetSeconds ${budgetSeconds} is not a number of seconds`;
  return null;
}

type Digested = { digest: string } | { tampered: string };

/** The harness digest of what is in `dir`, or why one of its harness files cannot be read (a FIFO, a link...). */
async function digestOf(dir: string, paths: string[], editable: string[]): Promise<Digested> {
  const read = boxFiles(dir);
  const entries = [];
  for (const path of paths.filter((p) => isHarnessPath(p, editable))) {
    const file = await read(path);
    if (file.kind === 'refused') return { tampered: `tampered harness: ${file.why}` };
    entries.push({ path, blob: gitBlobId(file.kind === 'file' ? file.content : Buffer.from(`missing ${path}`)) });
  }
  return { digest: harnessDigest(entries, editable) };
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

/** One training in one slot: refusal check, scratch copy, then the training and its score. */
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
      const uncopied = await materialize(slot.checkout, paths, input, dir, hb.beat);
      if (uncopied) {
        return result({ problem: `the checkout of ${slot.name} (${slot.checkout}) cannot be copied: ${uncopied}` });
      }
      await handToBox(dir);
      return result(await trainAndScore(slot, input, { dir, paths }, hb));
    } finally {
      await removeScratch(dir);
    }
  } finally {
    hb.stop();
  }
}

/**
 * Harness check, the command in its box, harness check again, summary; then, where the target
 * declares an evaluation, the harness's own val_bpb in place of whatever the training printed.
 */
async function trainAndScore(
  slot: Slot, input: TrainingInput, scratch: { dir: string; paths: string[] }, hb: Heartbeats,
): Promise<Partial<TrainingResult>> {
  const { dir, paths } = scratch;
  const editable = Object.keys(input.files);
  const harnessProblem = async (changed: string) => {
    const found = await digestOf(dir, paths, editable);
    return 'tampered' in found ? found.tampered : found.digest === input.harnessDigest ? null : changed;
  };
  const stale = await harnessProblem(harnessMismatch(slot));
  if (stale) return { problem: stale };
  const declared = await declaredHarness(dir);
  if ('problem' in declared) return { problem: declared.problem };
  const outcome = await runBoxed(slot, input, dir, hb, declared.scorer ? 'hidden' : 'shown');
  const summary = parseSummary(outcome.tail);
  const { exitCode, timedOut, seconds } = outcome;
  const logTail = outcome.tail.slice(-LOG_TAIL_CHARS);
  const fields = { exitCode, timedOut, seconds, metrics: summary.metrics, logTail };
  const modified = await harnessProblem(HARNESS_MODIFIED);
  if (modified) return { ...fields, metrics: {}, problem: modified };
  const limited = timedOut ? null : limitReason(exitCode, outcome.tail, limitsOf(slot));
  if (limited) return { ...fields, problem: limited };
  if (!declared.scorer) {
    return summary.nonFinite.includes('val_bpb') ? { ...fields, problem: NOT_FINITE } : belowFloor(fields, declared.floor);
  }
  if (exitCode !== 0 || timedOut) return fields; // a crash as it is: nothing to score
  const ctx = Context.current();
  const evaluation = await evaluate({
    experimentId: input.experimentId, scorer: declared.scorer, server: input.command, scratch: dir,
    harness: paths.filter((p) => isHarnessPath(p, editable)), scratchRoot: slot.scratchRoot ?? SCRATCH_ROOT,
    env: trainingEnv(slot, input), timeoutMs: Math.max(input.timeoutMs - seconds * 1000, 0),
    signal: ctx.cancellationSignal, box: boxFor(slot, 'none'), filter: slot.syscallFilter, beat: hb.beat,
  });
  if (ctx.cancellationSignal.aborted) await ctx.cancelled;
  return belowFloor(scored(fields, summary, evaluation), declared.floor);
}

/** A val_bpb under the floor the harness declares (`floor` in autoresearch.json) is a crash, never a keep. */
function belowFloor(fields: Partial<TrainingResult>, floor: number | null): Partial<TrainingResult> {
  const score = fields.metrics?.val_bpb;
  if (fields.problem || floor === null || score === undefined || !(score < floor)) return fields;
  return { ...fields, problem: `${IMPLAUSIBLE}: val_bpb ${score.toFixed(6)} is below this target's floor of ${floor} (${CONFIG_FILE} "floor")` };
}

function harnessMismatch(slot: Slot): string {
  return `harness mismatch: the checkout of ${slot.name} (${slot.checkout}) differs from the run's harness; ` +
    "update it to the run's base commit";
}

type Declared = { scorer: string | null; floor: number | null };

/**
 * What the harness declares in autoresearch.json (a harness file the digest covers): the scorer
 * (`evaluate`), or none, where a repo laid out like the original evaluates inside its training and its
 * printed score stands; and the lowest val_bpb an honest training of the target can reach (`floor`).
 */
async function declaredHarness(dir: string): Promise<Declared | { problem: string }> {
  const file = await boxFiles(dir)(CONFIG_FILE); // after the harness check: a regular file, or missing
  const text = file.kind === 'file' ? file.content.toString('utf8') : null;
  let declared: { evaluate?: unknown; floor?: unknown };
  try {
    declared = text === null ? {} : JSON.parse(text);
  } catch (err) {
    return { problem: `${CONFIG_FILE} is not valid JSON (${(err as Error).message})` };
  }
  const { evaluate, floor } = declared;
  if (floor !== undefined && !(typeof floor === 'number' && floor > 0)) {
    return { problem: `${CONFIG_FILE}: "floor" must be a positive number of bits per byte, e.g. 0.5` };
  }
  const found = { floor: (floor as number | undefined) ?? null };
  if (evaluate === undefined) return { scorer: null, ...found };
  if (typeof evaluate === 'string' && evaluate.trim()) return { scorer: evaluate, ...found };
  return { problem: `${CONFIG_FILE}: "evaluate" must be a command, e.g. "python prepare.py --evaluate"` };
}

/**
 * The training's fields with the harness's score as val_bpb. What the training printed is kept as
 * train_reported_val_bpb; it must agree with the harness's, or the experiment is a crash.
 */
function scored(fields: Partial<TrainingResult>, summary: Summary, ev: Evaluation): Partial<TrainingResult> {
  const { val_bpb: printed, ...metrics }: Record<string, number> = summary.metrics;
  const logTail = `${fields.logTail}\n${ev.tail}`.slice(-LOG_TAIL_CHARS);
  if (printed !== undefined) metrics.train_reported_val_bpb = printed;
  metrics.eval_seconds = Math.round(ev.seconds * 100) / 100;
  const base = { ...fields, logTail, metrics };
  if (ev.valBpb === undefined) return { ...base, problem: ev.problem };
  const measured = { ...base, metrics: { ...base.metrics, val_bpb: ev.valBpb } };
  const claim = printed !== undefined ? printed.toFixed(6)
    : summary.nonFinite.includes('val_bpb') ? 'a non-finite val_bpb' : null;
  if (claim === null || (printed !== undefined && Math.abs(printed - ev.valBpb) <= SCORE_TOLERANCE)) return measured;
  const problem = `score mismatch: the training printed ${claim}, the harness measured ${ev.valBpb.toFixed(6)}`;
  return { ...measured, problem };
}

/** What a command of this slot runs inside: bwrap and its arguments (unless --no-sandbox), then its limits. */
function boxFor(slot: Slot, network: Network): BoxFor {
  const limits = limitPrefix(limitsOf(slot));
  if (slot.sandbox === false) return async () => ({ box: limits });
  const { checkout, pathPrefix, networkAllow } = slot;
  const common = {
    scratchRoot: slot.scratchRoot ?? SCRATCH_ROOT, checkout, pathPrefix, network, networkAllow,
    tmpfsBytes: tmpfsBytes(limitsOf(slot)), filtered: slot.syscallFilter !== undefined, gpuMinor: slot.gpu?.minor,
  };
  return (req) => boxCommand({ ...common, ...req }, limits);
}

/** The command in its box (unless --no-sandbox); a cancelled activity rethrows once the box is dead. */
async function runBoxed(
  slot: Slot, input: TrainingInput, dir: string, hb: Heartbeats, validation: BoxRequest['validation'],
): Promise<RunOutcome> {
  const ctx = Context.current();
  const env = trainingEnv(slot, input);
  const boxed = await boxFor(slot, slot.network ?? 'none')({ scratch: dir, validation, env });
  hb.commandStarted();
  const outcome = await runCommand(input.command, {
    cwd: dir, env, ...boxed, filter: slot.syscallFilter, timeoutMs: input.timeoutMs, signal: ctx.cancellationSignal,
    onLine: hb.progress,
  });
  if (outcome.aborted) await ctx.cancelled;
  return outcome;
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;

export function slotName(index: number): string {
  return `${hostname()}-slot${index}`;
}
