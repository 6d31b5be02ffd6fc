// One experiment as a child workflow of the study: commit the candidate, train it on a GPU worker
// holding its repo, report the result to the study, then wear the study's decision. A child outlives
// its parent's continue-as-new (ParentClosePolicy ABANDON), so slots never drain at that boundary, and
// each experiment gets its own page in the Web UI (filter by ResearchTag: the night's table).
import {
  ActivityCancellationType,
  CancellationScope,
  condition,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import type { TrainingActivities } from '../gpu-worker/training';
import { untrained } from './decide';
import { EXPERIMENT_STATUS, VAL_BPB } from './search-attributes';
import { causeOf, summary } from './failures';
import {
  CONTROL_QUEUE,
  trainingActivityId,
  workflowIdFor,
  type ExperimentStatus,
  type RunConfig,
  type TrainingInput,
  type TrainingResult,
} from './types';

const TRAIN_GRACE_MS = 60_000; // the activity enforces --timeout itself; this covers materializing and reporting
const HEARTBEAT_TIMEOUT = '30 seconds'; // a silent GPU worker is presumed dead and the training retried
const DECISION_WAIT = '7 days'; // a study that never decides (terminated) must not keep its children forever

/** The control activities, for the study and its experiments alike. */
export const control = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '30 seconds', // git and file appends; a worker killed mid-way is retried this soon
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

/** Reading a commit's files is a git read on the control worker that runs this workflow: local, so no queue round trip. */
const local = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});
const LOCAL_READ = 'local-read'; // histories without it read the files with an ordinary activity

export interface ExperimentInput {
  config: RunConfig;
  experimentId: string;
  n: number;
  parent: string | null; // the best when it started training; null for the baseline
  commit: string | null; // the baseline's commit; candidates are committed here, with their Experiment-Id
  label: string; // the commit its trainings name before its own exists: the proposal's (the same tree)
  description: string;
  files?: Record<string, string>; // as the study before the state machine sent them; read from `label` when absent
  harnessDigest: string;
  gpuQueue: string;
  seeds: number[]; // one training per seed, side by side (the baseline's repeats measure the noise)
}

/** What the child tells the study: everything the decision needs. */
export interface Trained {
  experimentId: string;
  commit: string | null;
  run: number; // which of its trainings: the index of its seed
  result: TrainingResult;
}

export interface Decided {
  status: ExperimentStatus;
  reason: string;
  valBpb: number | null;
}

export const trainedSignal = defineSignal<[Trained]>('trained');
export const decidedSignal = defineSignal<[Decided]>('decided');
export const repeatSignal = defineSignal<[{ seed: number }]>('repeat'); // train once more: a confirmation run

export async function experimentWorkflow(input: ExperimentInput): Promise<Decided> {
  let decided: Decided | null = null;
  const seeds = [...input.seeds];
  let started = 0; // trainings started: seeds[started..] are still to train
  setHandler(decidedSignal, (d) => void (decided = d));
  // Idempotent by seed: the study sends a repeat again when it cannot tell whether the first one arrived.
  setHandler(repeatSignal, ({ seed }) => void (seeds.includes(seed) || seeds.push(seed)));
  upsertSearchAttributes([{ key: EXPERIMENT_STATUS, value: 'training' }]);
  const reader = patched(LOCAL_READ) ? local : control; // the read is on the path from a free slot to a busy one
  const files = input.files ?? (await reader.readEditable(input.config, input.label));

  // A training needs the candidate's files, not its commit: it starts at once while the experiment's own
  // commit (its Experiment-Id) is written, which takes that step off the path from a free slot to a busy one.
  const state: Committed = { commit: input.commit, cannot: null };
  const committed = state.commit
    ? Promise.resolve()
    : control.commitCandidate
        .executeWithOptions(summary(input.experimentId, `commit: ${input.description}`), [
          {
            config: input.config,
            experimentId: input.experimentId,
            parent: input.parent!,
            description: input.description,
            files,
          },
        ])
        .then(
          (commit) => void (state.commit = commit),
          (err) => void (state.cannot ??= isCancellation(err) ? 'cancelled' : `could not commit: ${causeOf(err)}`),
        );
  // Train every seed as it comes (the first ones side by side), until the study decides.
  const trainings: Promise<void>[] = [];
  const trainNext = () => {
    const run = started++;
    trainings.push(trainAndReport(input, files, run, seeds[run], committed, state));
  };
  try {
    for (;;) {
      while (started < seeds.length) trainNext();
      await condition(() => started < seeds.length || decided !== null);
      if (decided !== null) break;
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    state.cannot = 'cancelled';
    while (started < seeds.length) trainNext(); // each reports itself cancelled
  }
  await CancellationScope.nonCancellable(async () => {
    await Promise.all(trainings);
    await condition(() => decided !== null, DECISION_WAIT);
  });
  const final: Decided = decided ?? { status: 'crash', reason: 'the study never decided', valBpb: null };
  upsertSearchAttributes([
    { key: EXPERIMENT_STATUS, value: final.status },
    ...(final.valBpb !== null && Number.isFinite(final.valBpb) ? [{ key: VAL_BPB, value: final.valBpb }] : []),
  ]);
  return final;
}

interface Committed {
  commit: string | null;
  cannot: string | null; // why its trainings cannot count: cancelled, or no commit could be made
}

/** One training, reported to the study once the experiment's commit exists; a cancelled one as such. */
async function trainAndReport(
  input: ExperimentInput,
  files: Record<string, string>,
  run: number,
  seed: number,
  committed: Promise<void>,
  state: Committed,
): Promise<void> {
  let result: TrainingResult;
  try {
    result = state.cannot ? untrained(state.cannot) : await train(input, files, run, seed);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    result = untrained('cancelled');
  }
  await CancellationScope.nonCancellable(() => committed);
  if (state.cannot && !result.problem) result = untrained(state.cannot); // trained, but with no commit to stand for it
  // The study may be between runs (continue-as-new): a signal by workflow id reaches whichever run is current.
  await CancellationScope.nonCancellable(
    () =>
      getExternalWorkflowHandle(workflowIdFor(input.config.tag))
        .signal(trainedSignal, { experimentId: input.experimentId, commit: state.commit, run, result })
        .catch(() => undefined), // the study is gone (terminated): nobody is left to record this
  );
  if (run === 0) upsertSearchAttributes([{ key: EXPERIMENT_STATUS, value: 'deciding' }]);
}

/** The training activity on a repo's GPU queue, under a given id (what `status` looks for). */
export function trainingActivity(gpuQueue: string, activityId: string, timeoutMs: number) {
  return proxyActivities<TrainingActivities>({
    taskQueue: gpuQueue,
    activityId,
    startToCloseTimeout: timeoutMs + TRAIN_GRACE_MS,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, // the process tree is dead before we go on
    retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
  }).train;
}

/** Training never throws: a dead worker past its retries is a result too. Cancellation does throw. */
async function train(input: ExperimentInput, files: Record<string, string>, run: number, seed: number): Promise<TrainingResult> {
  const commit = input.label;
  const gpu = trainingActivity(input.gpuQueue, trainingActivityId(input.experimentId, run), input.config.timeoutMs);
  const training: TrainingInput = {
    experimentId: input.experimentId,
    seed,
    commit,
    files,
    harnessDigest: input.harnessDigest,
    command: input.config.command,
    budgetSeconds: input.config.budgetSeconds,
    timeoutMs: input.config.timeoutMs,
  };
  try {
    const what = `train ${commit.slice(0, 7)}${run > 0 ? ` again (run ${run + 1}, seed ${seed})` : ''}`;
    return await gpu.executeWithOptions(summary(input.experimentId, what), [training]);
  } catch (err) {
    if (isCancellation(err)) throw err;
    return untrained(`training failed: ${causeOf(err)}`);
  }
}

