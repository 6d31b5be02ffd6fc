// The harness's own score, for a target that declares `evaluate` in autoresearch.json. After a
// training, two processes, each in a box of its own: the training command again, which loads the
// model it saved and answers queries (it still cannot see the validation split), and the declared
// scorer, which alone reads the validation split, from a fresh copy of the harness files, never the
// candidate's. They talk through two pipes, so no code of the candidate runs where the validation
// bytes are, and nothing it printed or patched in its own memory reaches the score.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runCommand, type RunOptions, type RunOutcome } from './runner';
import { handToBox, type BoxRequest } from './sandbox';
import { materialize, newScratch, removeScratch } from './scratch';
import { parseSummary } from './summary';

export const QUERIES_ENV = 'AUTORESEARCH_EVAL_QUERIES'; // pipe: the scorer's queries, to the model
export const ANSWERS_ENV = 'AUTORESEARCH_EVAL_ANSWERS'; // pipe: the model's answers, to the scorer
// The model's server exits when the scorer closes its queries, and the scorer has printed its summary
// by then. A scorer still running this long after its server ended waits for answers that never come.
const SCORER_GRACE_MS = 2_000;
const PART_TAIL_CHARS = 2_000; // of each process's output in the log tail of a failed evaluation

/** What the evaluation's boxes differ in (under --no-sandbox: only the limits). */
export type BoxFor = (req: Pick<BoxRequest, 'scratch' | 'readOnlyScratch' | 'validation' | 'channel' | 'env'>) =>
  Promise<Pick<RunOptions, 'box' | 'egress'>>;

export interface EvalPlan {
  experimentId: string;
  scorer: string; // the declared `evaluate` command, run in a copy of the harness files
  server: string; // the training command, run again in the training's scratch to answer the scorer
  scratch: string; // what the training left: the server's, read-only
  harness: string[]; // the tracked harness paths of the scratch: the scorer's copy
  scratchRoot: string; // where the evaluation's own directory goes (hidden from every other box)
  env: Record<string, string>; // the training's environment; the pipes are added
  timeoutMs: number; // for both processes together
  signal: AbortSignal; // the activity's cancellation: both boxes die
  box: BoxFor; // what each process runs inside: its box and limits
  filter?: string; // the boxes' syscall filter
  beat: () => void; // heartbeats while the harness is copied
}

export interface Evaluation {
  valBpb?: number; // set when the evaluation succeeded
  problem?: string; // `evaluation failed: …` otherwise
  seconds: number;
  tail: string; // the end of the model's output, then the scorer's
}

/** val_bpb as the harness measures it, from the model the training saved in its scratch. */
export async function evaluate(plan: EvalPlan): Promise<Evaluation> {
  const started = Date.now();
  const work = await newScratch(`${plan.experimentId}-eval`, plan.scratchRoot);
  try {
    const harness = join(work, 'harness');
    const channel = join(work, 'channel');
    await Promise.all([mkdir(harness), mkdir(channel)]);
    const uncopied = await materialize(plan.scratch, plan.harness, { files: {} }, harness, plan.beat);
    const seconds = () => (Date.now() - started) / 1000;
    if (uncopied) return { problem: `evaluation failed: tampered harness: ${uncopied}`, tail: '', seconds: seconds() };
    const pipes = { [QUERIES_ENV]: join(channel, 'queries'), [ANSWERS_ENV]: join(channel, 'answers') };
    await promisify(execFile)('mkfifo', ['-m', '600', ...Object.values(pipes)]);
    await handToBox(work);
    const env = { ...plan.env, ...pipes };
    const boxes = await Promise.all([
      plan.box({ scratch: plan.scratch, readOnlyScratch: true, validation: 'hidden', channel, env }),
      plan.box({ scratch: harness, readOnlyScratch: true, validation: 'shown', channel, env }),
    ]);
    const [server, scorer] = await runBoth(plan, env, harness, boxes);
    return { ...judge(plan, server, scorer), seconds: seconds() };
  } finally {
    await removeScratch(work);
  }
}

/** Both processes; whichever ends first, the other cannot go on long. */
async function runBoth(plan: EvalPlan, env: Record<string, string>, harness: string, boxes: Pick<RunOptions, 'box' | 'egress'>[]) {
  const stopServer = new AbortController();
  const stopScorer = new AbortController();
  const cancel = () => [stopServer, stopScorer].forEach((c) => c.abort());
  plan.signal.addEventListener('abort', cancel, { once: true });
  if (plan.signal.aborted) cancel();
  const common = { env, timeoutMs: plan.timeoutMs, filter: plan.filter };
  const server = runCommand(plan.server, { ...common, cwd: plan.scratch, ...boxes[0], signal: stopServer.signal });
  const scorer = runCommand(plan.scorer, { ...common, cwd: harness, ...boxes[1], signal: stopScorer.signal });
  let grace: NodeJS.Timeout | undefined;
  const giveUp = () => (grace = setTimeout(() => stopScorer.abort(), SCORER_GRACE_MS));
  server.then(() => stopScorer.signal.aborted || giveUp(), () => stopScorer.abort());
  try {
    const scored = await scorer;
    stopServer.abort(); // its work is done, or can no longer be
    return [await server, scored] as const;
  } finally {
    stopScorer.abort(); // ended already: this only keeps a late grace timer from starting
    clearTimeout(grace);
    plan.signal.removeEventListener('abort', cancel);
  }
}

function judge(plan: EvalPlan, server: RunOutcome, scorer: RunOutcome): Omit<Evaluation, 'seconds'> {
  const part = (title: string, out: RunOutcome) => `=== ${title} ===\n${out.tail.slice(-PART_TAIL_CHARS)}`;
  const scorerPart = part(`the harness's evaluation: ${plan.scorer}`, scorer);
  const ended = server.timedOut ? 'timed out' : server.aborted && !plan.signal.aborted ? 'stopped once the scorer ended'
    : `exit code ${server.exitCode}`;
  const tail = `${part(`the model answering it: ${plan.server} (${ended})`, server)}\n${scorerPart}`;
  const failed = (why: string) => ({ problem: `evaluation failed: ${why}`, tail });
  const summary = parseSummary(scorer.tail);
  const valBpb = summary.metrics.val_bpb;
  const seconds = Math.round(scorer.seconds);
  if (scorer.timedOut) return failed(`timeout after ${seconds}s (what the training left of --timeout)`);
  if (scorer.aborted && !plan.signal.aborted) return failed(`the model stopped answering (${ended})`);
  if (scorer.exitCode !== 0) return failed(`exit code ${scorer.exitCode}`);
  if (summary.nonFinite.includes('val_bpb')) return failed('val_bpb is not finite (NaN or inf)');
  if (valBpb === undefined) return failed('no val_bpb in its summary');
  return { valBpb, tail };
}
