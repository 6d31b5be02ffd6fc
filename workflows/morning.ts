// The morning's questions, each a workflow of its own beside the study (its own page in the Web UI):
// `verify` trains the baseline and the best n more times, interleaved, and states the night's gain with a
// 95% interval; `ablate` trains the best without each kept change and states what each was worth.
// Every training is an activity in this workflow's history: a crash or restart loses and repeats nothing.
import { proxyActivities, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import { crashReason } from './decide';
import { trainingActivity } from './experiment';
import { summary } from './failures';
import { RESEARCH_TAG } from './search-attributes';
import { difference, estimate } from './stats';
import {
  CONTROL_QUEUE,
  trainingActivityId,
  type Ablation,
  type Arm,
  type Interval,
  type RunConfig,
  type Verdict,
} from './types';
import type { MorningSetup } from '../activities/morning';

const SEED_BASE = 900_000; // fresh seeds: the study's own trainings use n·16 + i, far below

const control = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export interface MorningInput {
  config: RunConfig;
  runs: number; // trainings per arm
}

export async function verifyWorkflow({ config, runs }: MorningInput): Promise<Verdict> {
  upsertSearchAttributes([{ key: RESEARCH_TAG, value: `${config.tag}.verify` }]);
  const setup = await control.morningSetup(config);
  const arms = await control.verifyArms(config, setup);
  const [baseline, best] = await trainArms(config, setup, arms, runs, 'verify');
  const gain = difference(baseline.scores, best.scores);
  const verdict: Verdict = {
    tag: config.tag,
    baseline: { ...interval(baseline.scores), commit: setup.baseline },
    best: { ...interval(best.scores), commit: setup.best },
    gain: { mean: gain.mean, low: gain.low, high: gain.high, n: gain.n },
    line: '',
    crashes: baseline.crashes + best.crashes,
  };
  verdict.line = verdictLine(verdict);
  await control.writeMorning(config, 'verdict.json', verdict);
  setCurrentDetails(`**verified** ${config.tag}: ${verdict.line}`);
  return verdict;
}

export async function ablateWorkflow({ config, runs }: MorningInput): Promise<Ablation> {
  upsertSearchAttributes([{ key: RESEARCH_TAG, value: `${config.tag}.ablate` }]);
  const setup = await control.morningSetup(config);
  const { arms, skipped } = await control.ablationArms(config, setup);
  const [best, ...without] = await trainArms(config, setup, arms, runs, 'ablate');
  const ablation: Ablation = {
    tag: config.tag,
    best: { ...interval(best.scores), commit: setup.best },
    changes: [
      ...without.map((arm, i) => {
        // What the change is worth: val_bpb without it minus with it (positive: it helped).
        const d = difference(best.scores, arm.scores);
        const contribution =
          arm.scores.length && best.scores.length ? { mean: d.mean, low: d.low, high: d.high, n: d.n } : null;
        return { name: arms[i + 1].name, change: arms[i + 1].change ?? '', commit: arms[i + 1].commit, contribution };
      }),
      ...skipped.map((s) => ({
        name: s.name,
        change: s.change ?? '',
        commit: s.commit,
        contribution: null,
        problem: s.problem,
      })),
    ],
  };
  await control.writeMorning(config, 'ablation.json', ablation);
  setCurrentDetails(`**ablated** ${config.tag}: ${ablation.changes.length} kept changes, ${runs} runs each`);
  return ablation;
}

/** Each arm trained `runs` times on fresh seeds, interleaved (round by round), at most --parallel at once. */
async function trainArms(config: RunConfig, setup: MorningSetup, arms: Arm[], runs: number, label: string) {
  const scored = arms.map(() => ({ scores: [] as number[], crashes: 0 }));
  const jobs = Array.from({ length: runs }, (_, round) => arms.map((_, a) => ({ round, a }))).flat();
  let next = 0;
  const lane = async () => {
    for (let job = jobs[next++]; job; job = jobs[next++]) {
      const arm = arms[job.a];
      const id = `${config.tag}.${label}-${job.a}-${job.round}`;
      const input = {
        experimentId: id,
        seed: SEED_BASE + job.round,
        commit: arm.commit,
        files: arm.files,
        harnessDigest: setup.harnessDigest,
        command: config.command,
        budgetSeconds: config.budgetSeconds,
        timeoutMs: config.timeoutMs,
      };
      // A training that crashes, or whose worker never answers, is counted and the others go on.
      const train = trainingActivity(setup.gpuQueue, trainingActivityId(id), config.timeoutMs);
      const result = await train.executeWithOptions(summary(id, `train ${arm.name}`), [input]).catch(() => null);
      if (result && crashReason(result) === null) scored[job.a].scores.push(result.metrics.val_bpb);
      else scored[job.a].crashes++;
      setCurrentDetails(`**${label}** ${config.tag}: ${next}/${jobs.length} trainings started`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, config.parallel) }, lane));
  return scored;
}

function interval(scores: number[]): Interval {
  const e = estimate(scores);
  return { mean: e.mean, low: e.mean - e.halfWidth, high: e.mean + e.halfWidth, n: e.n };
}

/** `baseline 2.1116 ± 0.0021 → best 2.0540 ± 0.0018 (n=3): −0.0576 [−0.0610, −0.0540]` */
export function verdictLine(v: Verdict): string {
  const pm = (i: Interval) => `${i.mean.toFixed(4)} ± ${((i.high - i.low) / 2).toFixed(4)}`;
  const signed = (x: number) => (x < 0 ? `−${Math.abs(x).toFixed(4)}` : `+${x.toFixed(4)}`);
  return `baseline ${pm(v.baseline)} → best ${pm(v.best)} (n=${v.best.n}): ${signed(v.gain.mean)} [${signed(v.gain.low)}, ${signed(v.gain.high)}]`;
}
