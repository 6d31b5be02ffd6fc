// How close each search gets to a known optimum: the sweep (one knob ×2 or ÷2 from the best, kept when
// better) against Optuna's TPE and CMA-ES (told every trial) on the two-knob bowl of search-fixture.ts,
// whose optimum lies between the sweep's grid points. `npm run bench -- search`: the median gap over seeds
// after 20 and 50 trials. The searches run without Temporal or trainings: the same proposal code, no waiting.
import { askSampler, searchSpace } from '../../activities/sampler';
import { findHyperparameters, formatValue, knobValues, proposeSweep } from '../../activities/sweep';
import { gitBlobId } from '../../activities/harness';
import { OPTIMUM, SEARCH_TRAIN, trueScore } from '../search-fixture';

const SEEDS = [1, 2, 3, 4, 5];
const CHECKPOINTS = [20, 50];

type Search = (seed: number, trials: number) => Promise<number[]>; // the true score of each trial, in order

const sweep: Search = async (seed, trials) => {
  let best = SEARCH_TRAIN;
  let bestScore = trueScore(knobValues(best));
  const tried = new Set([gitBlobId(Buffer.from(best))]);
  const scores = [bestScore];
  for (let n = 1; n < trials; n++) {
    const change = proposeSweep(best, seed, n, tried);
    if (!change) break;
    tried.add(gitBlobId(Buffer.from(change.content)));
    const score = trueScore(knobValues(change.content));
    scores.push(score);
    if (score < bestScore) [best, bestScore] = [change.content, score];
  }
  return scores;
};

const sampled = (sampler: 'tpe' | 'cmaes'): Search => async (seed, trials) => {
  const space = searchSpace(findHyperparameters(SEARCH_TRAIN), undefined);
  const told = [{ params: knobValues(SEARCH_TRAIN), value: trueScore(knobValues(SEARCH_TRAIN)) }];
  for (let n = 1; n < trials; n++) {
    const asked = await askSampler({ sampler, seed: seed * 1_000_003 + n, space, trials: told });
    // As the proposal writes them: formatted into the file, then read back.
    const params = Object.fromEntries(Object.entries(asked).map(([k, v]) => [k, Number(formatValue(v, space[k].int))]));
    told.push({ params, value: trueScore(params) });
  }
  return told.map((t) => t.value);
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function printSearch(): Promise<void> {
  const searches: [string, Search][] = [['sweep', sweep], ['tpe', sampled('tpe')], ['cmaes', sampled('cmaes')]];
  const most = Math.max(...CHECKPOINTS);
  console.log(`median gap to the optimum (val_bpb ${OPTIMUM.toFixed(4)}) over ${SEEDS.length} seeds, the best of the first N trials:`);
  for (const [name, search] of searches) {
    const runs: number[][] = [];
    for (const seed of SEEDS) runs.push(await search(seed, most));
    const gaps = CHECKPOINTS.map((n) => median(runs.map((scores) => Math.min(...scores.slice(0, n)) - OPTIMUM)));
    console.log(`${name.padEnd(6)} ${CHECKPOINTS.map((n, i) => `after ${n}: ${gaps[i].toFixed(4)}`).join('  ')}`);
  }
}
