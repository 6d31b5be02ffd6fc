// The research loop: propose → commit → train → decide → record, in as many lanes as the run allows.
// Deterministic and I/O-free: every side effect is an activity, so a restarted worker replays to here.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import type { TrainingActivities } from '../gpu-worker/training';
import { decide, type Decision } from './decide';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT } from './search-attributes';
import {
  CONTROL_QUEUE,
  GPU_QUEUE,
  experimentId,
  trainingActivityId,
  workflowIdFor,
  type Best,
  type ExperimentRecord,
  type InFlight,
  type Phase,
  type Proposal,
  type RunConfig,
  type RunSetup,
  type RunState,
  type StatusView,
  type TrainingResult,
} from './types';

const EXPERIMENTS_PER_HISTORY = 100; // continue-as-new after this many, keeping each history well under 10k events
const RECENT_KEPT = 10; // rows carried for `status`; results.jsonl holds them all
const MAX_FIX_ATTEMPTS = 2; // crashed candidates the llm proposer may try to repair in a row
const TRAIN_GRACE_MS = 60_000; // the activity enforces --timeout itself; this covers materializing and reporting
const HEARTBEAT_TIMEOUT = '30 seconds'; // a silent GPU worker is presumed dead and the training retried

const control = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '30 seconds', // git and file appends; a worker killed mid-way is retried this soon
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});
const proposer = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '15 minutes', // an LLM may think for a while; the activity times each call itself
  heartbeatTimeout: '30 seconds', // …but a dead proposer is noticed within half a minute
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 5 },
});

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal<[{ cancelInFlight: boolean; reason?: string }]>('stop');
export const statusQuery = defineQuery<StatusView>('status');

/** State carried across continue-as-new. */
export interface Carried {
  setup: RunSetup;
  nextNumber: number;
  experimentsDone: number;
  experimentsKept: number;
  best: Best | null;
  tokensUsed: number;
  paused: boolean;
  recent: ExperimentRecord[];
  crashed?: { experimentId: string; commit: string } | null; // the last training crash, for the llm to fix
  fixStreak?: number;
}

export async function researchWorkflow(config: RunConfig, carried?: Carried): Promise<StatusView> {
  const run: Carried = carried ?? {
    setup: await control.prepareRun.executeWithOptions({ summary: `prepare ${config.tag}: branch, baseline ref, harness digest` }, [config]),
    nextNumber: 0,
    experimentsDone: 0,
    experimentsKept: 0,
    best: null,
    tokensUsed: 0,
    paused: false,
    recent: [],
  };
  const firstNumberHere = run.nextNumber;
  const lanes = new Map<string, InFlight & { scope: CancellationScope }>();
  let stop: { cancelInFlight: boolean; reason: string } | null = null;
  let endReason = '';
  let finalState: RunState | null = null;
  let recording: Promise<void> = Promise.resolve();
  let fatal: unknown = null; // an unexpected failure: the run fails now
  let halt: string | null = null; // a reason the run cannot go on: it drains its lanes, then fails with it

  setHandler(pauseSignal, () => void (run.paused = true));
  setHandler(resumeSignal, () => void (run.paused = false));
  setHandler(stopSignal, ({ cancelInFlight, reason }) => {
    stop = { cancelInFlight, reason: reason ?? 'stopped by request' };
    if (cancelInFlight) for (const lane of lanes.values()) lane.scope.cancel();
  });
  setHandler(statusQuery, () => status());

  function state(): RunState {
    if (finalState) return finalState;
    if (stop) return 'stopping';
    return run.paused ? 'paused' : 'running';
  }

  function status(): StatusView {
    return {
      tag: config.tag,
      workflowId: workflowIdFor(config.tag),
      state: state(),
      experimentsDone: run.experimentsDone,
      experimentsKept: run.experimentsKept,
      best: run.best && { commit: run.best.commit, valBpb: run.best.valBpb },
      inFlight: [...lanes.values()].map(({ id, phase, description }) => ({ id, phase, description, heartbeat: null })),
      tokensUsed: run.tokensUsed,
      reason: stop?.reason,
      recent: run.recent,
    };
  }

  /** Why no new experiment may start, or null when one may. */
  function noMoreReason(): string | null {
    if (stop) return stop.reason;
    if (config.maxExperiments !== undefined && run.nextNumber >= config.maxExperiments) {
      return `reached ${config.maxExperiments} experiments`;
    }
    if (config.maxTokensTotal !== undefined && run.tokensUsed >= config.maxTokensTotal) {
      return `token budget of ${config.maxTokensTotal} reached`;
    }
    if (config.untilMs !== undefined && Date.now() + config.timeoutMs > config.untilMs) {
      return `deadline ${new Date(config.untilMs).toISOString()} reached`;
    }
    if (run.nextNumber - firstNumberHere >= EXPERIMENTS_PER_HISTORY || workflowInfo().continueAsNewSuggested) {
      return 'continue-as-new';
    }
    return null;
  }

  // The baseline must score before any candidate can name a parent.
  const laneFree = () => !run.paused && lanes.size < config.parallel && (run.best !== null || run.nextNumber === 0);

  for (;;) {
    if (fatal) throw fatal;
    const blocked = noMoreReason();
    if (blocked !== null && lanes.size === 0) {
      endReason = blocked;
      break;
    }
    if (blocked === null && laneFree()) {
      launch(run.nextNumber++);
      continue;
    }
    const msToDeadline = config.untilMs === undefined ? undefined : Math.max(1, config.untilMs - config.timeoutMs - Date.now());
    const wake = () => fatal !== null || (noMoreReason() === null && laneFree()) || (noMoreReason() !== null && lanes.size === 0);
    if (msToDeadline === undefined) await condition(wake);
    else await condition(wake, msToDeadline);
  }
  await recording;

  if (halt) {
    describe(`failed: ${halt}`);
    throw ApplicationFailure.nonRetryable(halt, 'RunHalted');
  }
  if (endReason === 'continue-as-new') {
    describe('continuing as new');
    await continueAsNew<typeof researchWorkflow>(config, run);
  }
  finalState = stop ? 'stopped' : 'completed';
  describe(`${finalState}: ${endReason}`);
  return { ...status(), reason: endReason };

  function launch(n: number): void {
    const id = experimentId(config.tag, n);
    const scope = new CancellationScope();
    lanes.set(id, { id, phase: 'proposing', description: '', heartbeat: null, scope });
    describe(`experiment ${id} started`);
    scope
      .run(() => experiment(n, id))
      .catch((err) => void (fatal = err))
      .finally(() => lanes.delete(id));
  }

  function haltRun(reason: string): void {
    halt ??= reason;
    stop ??= { cancelInFlight: false, reason };
  }

  function setPhase(id: string, phase: Phase, description?: string): void {
    const lane = lanes.get(id);
    if (!lane) return;
    lane.phase = phase;
    if (description !== undefined) lane.description = description;
  }

  /** One experiment, start to recorded row. Whatever goes wrong becomes its row; the night goes on. */
  async function experiment(n: number, id: string): Promise<void> {
    const startedAt = new Date().toISOString();
    const candidate = { parent: run.best?.commit ?? null, commit: null as string | null, description: n === 0 ? 'baseline' : '' };
    let tokens = 0;
    let fixes: string | undefined;
    let outcome: Decision;
    let result: TrainingResult | null = null;
    try {
      let files: Record<string, string>;
      if (n === 0) {
        candidate.commit = run.setup.baseCommit;
        files = await control.readEditable.executeWithOptions(summary(id, 'read the baseline'), [config, candidate.commit]);
      } else {
        const proposal = await propose(id, n, candidate.parent!);
        tokens = proposal.tokens;
        run.tokensUsed += tokens;
        run.fixStreak = proposal.ok && proposal.fixes ? (run.fixStreak ?? 0) + 1 : 0;
        if (!proposal.ok) throw new ExperimentFailed(`proposer failed: ${proposal.reason}`);
        fixes = proposal.fixes;
        candidate.description = proposal.description;
        setPhase(id, 'committing', proposal.description);
        files = proposal.files;
        candidate.commit = await control.commitCandidate.executeWithOptions(summary(id, `commit: ${proposal.description}`), [
          { config, experimentId: id, parent: candidate.parent!, description: proposal.description, files },
        ]);
      }
      setPhase(id, 'training', candidate.description);
      result = await train({
        experimentId: id,
        commit: candidate.commit,
        files,
        harnessDigest: run.setup.harnessDigest,
        command: config.command,
        budgetSeconds: config.budgetSeconds,
        timeoutMs: config.timeoutMs,
      });
      setPhase(id, 'deciding');
      // Decide now, against the best as it is at completion time: lanes finish in any order.
      outcome = decide(result, run.best, config.minImprovement);
    } catch (err) {
      outcome = failure(err);
    }
    if (!candidate.description) candidate.description = outcome.reason;
    if (outcome.status !== 'crash') run.crashed = null;
    else if (result && n > 0) run.crashed = { experimentId: id, commit: candidate.commit! };
    const previousBest = run.best;
    if (outcome.status === 'keep') run.best = { experimentId: id, commit: candidate.commit!, valBpb: outcome.valBpb! };
    await record({
      id,
      n,
      ...candidate,
      status: outcome.status,
      reason: outcome.reason,
      valBpb: outcome.valBpb,
      memoryGb: (result?.metrics.peak_vram_mb ?? 0) / 1024,
      metrics: result?.metrics ?? {},
      proposer: n === 0 ? 'baseline' : config.proposer,
      tokens,
      fixes,
      startedAt,
      finishedAt: new Date().toISOString(),
      trainingSeconds: result?.seconds ?? 0,
      logTail: outcome.status === 'crash' ? result?.logTail : undefined,
    }, outcome.status === 'keep' && previousBest ? { from: previousBest.commit, to: candidate.commit! } : undefined);
    if (n === 0 && outcome.status !== 'keep') haltRun(`the baseline did not score (${outcome.reason}); fix the research repo and start again`);
  }

  /** A proposal; the llm proposer may fix the last crash instead. A refused API key halts the run. */
  async function propose(id: string, n: number, parent: string): Promise<Proposal> {
    const fixable = config.proposer === 'llm' && (run.fixStreak ?? 0) < MAX_FIX_ATTEMPTS ? run.crashed ?? undefined : undefined;
    try {
      const what = fixable ? `propose (${config.proposer}, may repair ${fixable.experimentId})` : `propose (${config.proposer})`;
      return await proposer.propose.executeWithOptions(summary(id, what), [{ config, experimentId: id, n, parent, crashed: fixable }]);
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (failureType(err) === 'LlmRefused') haltRun(causeOf(err));
      throw new ExperimentFailed(`proposer failed: ${causeOf(err)}`);
    }
  }

  /** Training never throws: a dead worker past its retries, or a cancelled run, is a result too. */
  async function train(input: Parameters<TrainingActivities['train']>[0]): Promise<TrainingResult> {
    const gpu = proxyActivities<TrainingActivities>({
      taskQueue: GPU_QUEUE,
      activityId: trainingActivityId(input.experimentId),
      startToCloseTimeout: input.timeoutMs + TRAIN_GRACE_MS,
      heartbeatTimeout: HEARTBEAT_TIMEOUT,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
    });
    const failed = (problem: string): TrainingResult => ({ exitCode: null, timedOut: false, metrics: {}, seconds: 0, logTail: '', problem, worker: '' });
    try {
      return await gpu.train.executeWithOptions(summary(input.experimentId, `train ${input.commit.slice(0, 7)}`), [input]);
    } catch (err) {
      if (isCancellation(err)) throw err;
      return failed(`training failed: ${causeOf(err)}`);
    }
  }

  /** Rows are written one at a time, in decision order, even when lanes finish together. */
  async function record(entry: ExperimentRecord, move?: { from: string; to: string }): Promise<void> {
    const previous = recording;
    const what = `record ${entry.status}${entry.valBpb === null ? '' : ` ${entry.valBpb.toFixed(6)}`}${move ? ', move the branch' : ''}`;
    recording = previous
      .then(() => CancellationScope.nonCancellable(() => control.recordExperiment.executeWithOptions(summary(entry.id, what), [{ config, record: entry, move }])))
      .catch((err) => {
        if (failureType(err) !== 'RepoError') throw err;
        haltRun(causeOf(err)); // the row is written; the branch is not ours to move any more
      });
    await recording;
    run.experimentsDone++;
    if (entry.status === 'keep') run.experimentsKept++;
    run.recent = [...run.recent, { ...entry, logTail: undefined }].slice(-RECENT_KEPT);
    publish(entry);
  }

  /** What the Web UI shows without opening the run's history. */
  function publish(last: ExperimentRecord): void {
    upsertSearchAttributes([
      { key: EXPERIMENTS_DONE, value: run.experimentsDone },
      { key: EXPERIMENTS_KEPT, value: run.experimentsKept },
      ...(run.best ? [{ key: BEST_VAL_BPB, value: run.best.valBpb }] : []),
    ]);
    upsertMemo({ repo: config.repo, proposer: config.proposer, bestCommit: run.best?.commit ?? null });
    const score = last.valBpb === null ? '' : ` val_bpb ${last.valBpb.toFixed(6)}`;
    describe(`${last.id} ${last.status}${score}: ${last.description}`);
  }

  function describe(now: string): void {
    const best = run.best ? `best val_bpb ${run.best.valBpb.toFixed(6)} (${run.best.commit.slice(0, 7)})` : 'no best yet';
    setCurrentDetails(`**${state()}** · ${run.experimentsDone} done, ${run.experimentsKept} kept · ${best}\n\nlast: ${now}`);
  }
}

class ExperimentFailed extends Error {}

/** The line the Web UI shows beside an activity in the event history (at most 200 bytes). */
function summary(experimentId: string, what: string): { summary: string } {
  const text = `${experimentId}: ${what.replace(/\s+/g, ' ')}`;
  return { summary: text.length > 180 ? `${text.slice(0, 179)}…` : text };
}

function failure(err: unknown): Decision {
  if (isCancellation(err)) return { status: 'discard', reason: 'cancelled by stop', valBpb: null };
  if (err instanceof ExperimentFailed) return { status: 'crash', reason: err.message, valBpb: null };
  return { status: 'crash', reason: `activity failed: ${causeOf(err)}`, valBpb: null };
}

/** The type of the ApplicationFailure an activity threw, if it threw one. */
function failureType(err: unknown): string | undefined {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? (err.cause.type ?? undefined) : undefined;
}

/** The innermost message of an ActivityFailure: what actually went wrong. */
function causeOf(err: unknown): string {
  let e = err as Error | undefined;
  while (e?.cause instanceof Error) e = e.cause;
  return e?.message ?? String(err);
}
