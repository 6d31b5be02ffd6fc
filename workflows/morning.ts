// The morning's questions, each a workflow of its own beside the study (its own page in the Web UI):
// `verify` trains the baseline and the best n more times, interleaved, and states the night's gain with a
// 95% interval; `ablate` trains the best without each kept change and states what each was worth;
// `compare` trains any refs side by side and ranks them, saying which differences are real; `sensitivity`
// trains the best with each knob moved along a grid and says which knobs matter.
// Every training is an activity in this workflow's history: a crash or restart loses and repeats nothing.
import { proxyActivities, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import { crashReason } from './decide';
import { trainingActivity } from './experiment';
import { summary } from './failures';
import { RESEARCH_TAG } from './search-attributes';
import { difference, estimate, holm, oneWay, welchP } from './stats';
import {
  CONTROL_QUEUE,
  trainingActivityId,
  type Ablation,
  type Arm,
  type Comparison,
  type Interval,
  type RunConfig,
  type Sensitivity,
  type Verdict,
} from './types';
import type { TrainingSetup } from '../activities/morning';

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

export interface CompareInput extends MorningInput {
  refs: string[]; // branches, tags or commits of config.repo
}

export interface SensitivityInput extends MorningInput {
  knobs: string[] | null; // null: every knob of the editable files
  points: number; // grid values per knob, the best's own among them
}

const FAMILY_ALPHA = 0.05; // compare: the chance that any difference it calls real is not, over all the pairs

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

export async function compareWorkflow({ config, runs, refs }: CompareInput): Promise<Comparison> {
  upsertSearchAttributes([{ key: RESEARCH_TAG, value: `${config.tag}.compare` }]);
  const { setup, arms } = await control.compareArms(config, refs);
  const scored = await trainArms(config, setup, arms, runs, 'compare');
  const comparison = ranked(config.tag, runs, arms, scored);
  await control.writeMorning(config, 'comparison.json', comparison);
  setCurrentDetails(`**compared** ${config.tag}: ${comparison.line}`);
  return comparison;
}

export async function sensitivityWorkflow({ config, runs, knobs, points }: SensitivityInput): Promise<Sensitivity> {
  upsertSearchAttributes([{ key: RESEARCH_TAG, value: `${config.tag}.sensitivity` }]);
  const setup = await control.morningSetup(config);
  const grid = await control.sensitivityArms(config, setup, knobs, points);
  const scored = await trainArms(config, setup, grid.arms, runs, 'sensitivity');
  const best = scored[0].scores;
  const curves = grid.knobs.map((k) => {
    const pointOf = (value: string) => {
      const i = value === k.value ? 0 : grid.arms.findIndex((a) => a.knob?.name === k.name && a.knob.value === value);
      return { ...interval(scored[i].scores), value, commit: grid.arms[i].commit, crashes: scored[i].crashes, scores: scored[i].scores };
    };
    const all = k.grid.map(pointOf);
    const measured = all.filter((p) => p.n > 0);
    const means = measured.map((p) => p.mean);
    const lowest = measured.reduce((a, b) => (b.mean < a.mean ? b : a), measured[0] ?? all[0]);
    return {
      knob: k.name,
      value: k.value,
      points: all.map(({ scores: _s, ...point }) => point),
      bestValue: lowest.value,
      spread: means.length ? Math.max(...means) - Math.min(...means) : 0,
      ...oneWay(all.map((p) => p.scores)),
      leads: measured.filter((p) => p.value !== k.value && difference(p.scores, best).low > 0).map((p) => p.value),
    };
  });
  const adjusted = holm(curves.map((c) => c.p));
  const ranked = curves
    .map((c, i) => ({ ...c, pHolm: adjusted[i], sensitive: adjusted[i] < FAMILY_ALPHA }))
    .sort((a, b) => b.aboveNoise - a.aboveNoise);
  const sensitivity: Sensitivity = {
    tag: config.tag,
    runs,
    best: { ...interval(best), commit: setup.best },
    knobs: ranked,
    line: ranked
      .map((c) => `${c.knob} ${c.sensitive ? `sensitive (best ${c.bestValue}, p=${c.pHolm.toPrecision(2)})` : `not (p=${c.pHolm.toPrecision(2)})`}`)
      .join('; '),
  };
  await control.writeMorning(config, 'sensitivity.json', sensitivity);
  setCurrentDetails(`**sensitivity** ${config.tag}: ${sensitivity.line}`);
  return sensitivity;
}

/**
 * Every pair tested (Welch, Holm-adjusted over all pairs); a ref's rank is one more than the number of refs
 * really better than it, so refs that cannot be told apart from the same betters share a rank.
 */
function ranked(tag: string, runs: number, arms: Arm[], scored: { scores: number[]; crashes: number }[]): Comparison {
  const raw: Omit<Comparison['pairs'][number], 'pHolm' | 'real'>[] = [];
  for (let i = 0; i < arms.length; i++)
    for (let j = i + 1; j < arms.length; j++) {
      const [lo, hi] = estimate(scored[i].scores).mean <= estimate(scored[j].scores).mean ? [i, j] : [j, i];
      const d = difference(scored[lo].scores, scored[hi].scores);
      raw.push({
        a: arms[lo].name,
        b: arms[hi].name,
        difference: { mean: d.mean, low: d.low, high: d.high, n: d.n },
        p: welchP(scored[lo].scores, scored[hi].scores),
      });
    }
  const adjusted = holm(raw.map((r) => r.p));
  const pairs = raw.map((r, k) => ({ ...r, pHolm: adjusted[k], real: adjusted[k] < FAMILY_ALPHA }));
  const refs = arms.map((arm, i) => ({
    ...interval(scored[i].scores),
    ref: arm.name,
    commit: arm.commit,
    crashes: scored[i].crashes,
    rank: 1 + pairs.filter((p) => p.real && p.b === arm.name).length,
  }));
  return { tag, runs, refs, pairs, line: rankingLine(refs, pairs) };
}

/** `1. exp-b; 2. main, exp-a (cannot be told apart)`: rank by rank, best first. */
export function rankingLine(refs: Comparison['refs'], pairs: Comparison['pairs']): string {
  const ranks = [...new Set(refs.map((r) => r.rank))].sort((a, b) => a - b);
  return ranks
    .map((rank) => {
      const names = refs.filter((r) => r.rank === rank).sort((a, b) => a.mean - b.mean).map((r) => r.ref);
      if (names.length === 1) return `${rank}. ${names[0]}`;
      const apart = pairs.some((p) => p.real && names.includes(p.a) && names.includes(p.b));
      return `${rank}. ${names.join(', ')} (${apart ? 'some differ' : 'cannot be told apart'})`;
    })
    .join('; ');
}

/** Each arm trained `runs` times on fresh seeds, interleaved (round by round), at most --parallel at once. */
async function trainArms(config: RunConfig, setup: TrainingSetup, arms: Arm[], runs: number, label: string) {
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
