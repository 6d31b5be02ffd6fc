// The ablation's chart: what each kept change is worth, as `ablate` measured it (ablation.json beside the
// results): per kept change a dot (the mean) on a bar (its 95% interval). Its rows are the summary's table too.
import type { TopLevelSpec } from 'vega-lite/build/index';
import { formatScore } from '../../activities/results';
import type { Ablation, ExperimentRecord, Interval } from '../../workflows/types';
import { truncate } from './progress';
import { COLORS, FONT } from './render';

export const ABLATION_SVG = 'ablation.svg';
export const ABLATION_PNG = 'ablation.png';

const ABLATION_WIDTH = 560; // the plot of the ablation chart; its change labels sit to its left
const ABLATION_ROW_PX = 34; // height per kept change
const ABLATION_MIN_HEIGHT = 120;
export const EFFECTS = ['helped', 'hurt', 'unclear', 'not measured'] as const;

export type Effect = (typeof EFFECTS)[number];

/** One kept change as the ablation measured it. */
export interface AblationRow {
  change: string; // the kept experiment's id (its short commit when the commit names none)
  description: string;
  label: string; // `<change>: <description, truncated>`: the chart's axis label
  contribution: Interval | null; // val_bpb without the change − with it: positive, it helped
  bounded: boolean; // the interval has finite bounds (JSON writes an unbounded one's ±Infinity as null)
  problem: string | null; // why it could not be taken out, or scored
  effect: Effect;
}

export const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
// −0 (a difference of equal means) would print as -0.000000: x === 0 holds for it, and 0 takes its place.
export const signed = (x: number) => `${x > 0 ? '+' : ''}${formatScore(x === 0 ? 0 : x)}`;

function effectOf(contribution: Interval | null, bounded: boolean, problem: string | null): Effect {
  if (problem !== null || contribution === null) return 'not measured';
  if (bounded && contribution.low > 0) return 'helped';
  if (bounded && contribution.high < 0) return 'hurt';
  return 'unclear';
}

/** The ablation's changes in keep order (those the records do not name last), described as the records do. */
export function ablationRows(ablation: Ablation, records: ExperimentRecord[]): AblationRow[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const rows = ablation.changes.map((c): AblationRow => {
    const description = byId.get(c.change)?.description ?? c.name.replace(/^without [^:]*: /, '');
    const contribution = c.contribution && finite(c.contribution.mean) ? c.contribution : null;
    const bounded = contribution !== null && finite(contribution.low) && finite(contribution.high);
    const problem = c.problem ?? (contribution === null ? 'no score: its trainings crashed' : null);
    const label = `${c.change}: ${truncate(description)}`;
    const effect = effectOf(contribution, bounded, problem);
    return { change: c.change, description, label, contribution, bounded, problem, effect };
  });
  const order = (row: AblationRow) => byId.get(row.change)?.n ?? Infinity;
  return rows.sort((a, b) => order(a) - order(b));
}

/** The x range: every mean and bound, and zero, with a margin. */
function contributionDomain(rows: AblationRow[]): [number, number] {
  const values = rows.flatMap((r) => {
    if (r.contribution === null) return [];
    return r.bounded ? [r.contribution.low, r.contribution.high] : [r.contribution.mean];
  });
  const [lo, hi] = [Math.min(0, ...values), Math.max(0, ...values)];
  const pad = Math.max((hi - lo) * 0.08, 1e-4);
  return [lo - pad, hi + pad];
}

/** The Vega-Lite spec of ablation.svg: per kept change a dot (the mean) on a bar (its 95% interval). */
export function ablationSpec(rows: AblationRow[], ablation: Ablation): TopLevelSpec {
  const domain = contributionDomain(rows);
  const x = {
    type: 'quantitative' as const,
    scale: { domain, nice: true, zero: false },
    axis: { title: 'val_bpb without the change − with it (positive: the change helped)', format: '.4f' },
  };
  const y = {
    field: 'label', type: 'nominal' as const, sort: rows.map((r) => r.label), axis: { title: null, labelLimit: 360 },
  };
  const present = EFFECTS.filter((e) => rows.some((r) => r.effect === e));
  const color = {
    field: 'effect', type: 'nominal' as const, scale: { domain: present, range: present.map((e) => COLORS[e]) },
    legend: { title: null, orient: 'top' as const, direction: 'horizontal' as const },
  };
  const values = (keep: (r: AblationRow) => boolean) => rows.filter(keep).map((r) => ({
    label: r.label, effect: r.effect, mean: r.contribution?.mean, low: r.contribution?.low, high: r.contribution?.high,
    text: `not measured: ${r.problem}`,
    aria: r.contribution === null
      ? `${r.change} not measured: ${r.problem}`
      : `${r.change} contribution ${signed(r.contribution.mean)}`
        + `${r.bounded ? ` [${signed(r.contribution.low)}, ${signed(r.contribution.high)}]` : ''}: ${r.effect}`,
  }));
  const best = ablation.best;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `autoresearch ${ablation.tag}: what each kept change is worth`,
      subtitle: [
        `the best (${best.commit.slice(0, 7)}, val_bpb ${formatScore(best.mean)}, n=${best.n}) `
          + 'trained again without each change',
        'dot: the mean difference  ·  bar: its 95% interval',
      ],
      anchor: 'start',
    },
    width: ABLATION_WIDTH,
    height: Math.max(ABLATION_MIN_HEIGHT, rows.length * ABLATION_ROW_PX),
    background: 'white',
    config: { font: FONT, view: { stroke: '#dddddd' } },
    layer: [
      {
        name: 'zero',
        data: { values: [{ zero: 0 }] },
        mark: { type: 'rule', color: '#555555', strokeDash: [4, 3], aria: false },
        encoding: { x: { ...x, field: 'zero' } },
      },
      {
        name: 'intervals',
        data: { values: values((r) => r.bounded) },
        mark: { type: 'rule', strokeWidth: 2.5, aria: false },
        encoding: { x: { ...x, field: 'low' }, x2: { field: 'high' }, y, color },
      },
      {
        name: 'contributions',
        data: { values: values((r) => r.contribution !== null) },
        mark: { type: 'point', shape: 'circle', filled: true, size: 90, stroke: 'black', strokeWidth: 0.8 },
        encoding: { x: { ...x, field: 'mean' }, y, color, description: { field: 'aria' } },
      },
      {
        name: 'problems',
        data: { values: values((r) => r.contribution === null) },
        mark: { type: 'text', align: 'left', baseline: 'middle', dx: 4, fontSize: 11 },
        encoding: { x: { value: 0 }, y, color, text: { field: 'text' }, description: { field: 'aria' } },
      },
    ],
  };
}
