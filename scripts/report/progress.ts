// The progress chart, like the original autoresearch's: val_bpb per experiment, discarded points grey, kept
// points green and labelled, crashes marked on the x axis, diverged trainings marked on the top edge with
// their value, the running best as a step line; keeps confirmed by a second run ringed, each run of a
// repeated experiment a small dot.
import type { TopLevelSpec } from 'vega-lite/build/index';
import { divergedThreshold, formatScore, shortScore } from '../../activities/results';
import type { ExperimentRecord, ExperimentStatus } from '../../workflows/types';
import { COLORS, FONT, renderSvg } from './render';

export const CHART_SVG = 'progress.svg';
export const CHART_PNG = 'progress.png';

const LABEL_MAX = 40; // characters of a kept experiment's description shown on the chart
const WIDTH = 900;
const HEIGHT = 420;
const RUN_OFFSET_PX = 11; // a run's dot sits this far left of its experiment's point, so the point does not hide it
const EDGE_PX = 6; // pixels between a mark on the chart's edge (crash, diverged) and the border
export const CONFIRMED = 'kept after confirmation'; // the ring's legend entry
// The legends sit in a row above the plot, never on it, where they would hide the points at the top right.
const LEGEND = { title: null, orient: 'top', direction: 'horizontal' } as const;

export interface ChartPoint {
  n: number;
  id: string;
  status: ExperimentStatus;
  valBpb: number | null; // null: the experiment did not score (a crash, or a cancelled discard)
  diverged: boolean; // valBpb above divergedThreshold: drawn on the top edge, its value beside it
  description: string;
  label: string; // kept: the description, truncated; diverged: the value, e.g. `2.2e33`
  aria: string; // the mark's accessible description: `<id> <status> val_bpb <value>`
  runs: number; // trainings of it (its val_bpb is their mean); 1 for records written before repeats existed
  confirmed: boolean; // kept after a confirmation run
}

/** One training of an experiment trained more than once (the baseline's repeats, a confirmation). */
export interface RunPoint {
  n: number;
  status: ExperimentStatus; // the experiment's
  valBpb: number;
  aria: string; // `<id> run <k> of <runs>, seed <seed>: val_bpb <value>`
}

export interface ChartData {
  tag: string;
  points: ChartPoint[]; // every experiment, by experiment number
  scored: ChartPoint[]; // those with a val_bpb inside the chart's range, kept or discarded
  kept: ChartPoint[]; // scored and kept: highlighted and labelled
  discarded: ChartPoint[]; // scored and discarded
  diverged: ChartPoint[]; // a val_bpb above the threshold: marked on the top edge
  unscored: ChartPoint[]; // no val_bpb (crashes, cancelled): marked along the x axis
  confirmed: ChartPoint[]; // kept after a confirmation run: ringed
  runs: RunPoint[]; // each scored training of a repeated experiment, inside the chart's range: small dots
  sigma: number | null; // the run's latest noise estimate
  best: { n: number; valBpb: number }[]; // the running best's step line, vertex by vertex
  threshold: number | null; // divergedThreshold of the records
  xDomain: [number, number];
  yDomain: [number, number] | null; // the scored points plus a margin; null when nothing scored
}

/** `<tag>-<n>` → `<tag>`. */
export function tagOf(records: ExperimentRecord[]): string {
  const id = records[0]?.id ?? '';
  return id.replace(/-\d+$/, '') || 'autoresearch';
}

export function truncate(text: string, max = LABEL_MAX): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1).trimEnd()}…`;
}

export function scoredValue(r: ExperimentRecord): number | null {
  return typeof r.valBpb === 'number' && Number.isFinite(r.valBpb) ? r.valBpb : null;
}

function chartPoint(r: ExperimentRecord, threshold: number | null): ChartPoint {
  const valBpb = scoredValue(r);
  const diverged = valBpb !== null && threshold !== null && valBpb > threshold;
  const value = valBpb === null ? 'none' : diverged ? `${shortScore(valBpb)} (diverged)` : formatScore(valBpb);
  return {
    n: r.n,
    id: r.id,
    status: r.status,
    valBpb,
    diverged,
    description: r.description,
    label: diverged ? shortScore(valBpb!) : truncate(r.description),
    aria: `${r.id} ${r.status} val_bpb ${value}`,
    runs: Math.max(1, r.runs?.length ?? 1),
    confirmed: r.confirmed === true && r.status === 'keep',
  };
}

/** The trainings of every experiment trained more than once, those above the threshold left out. */
function runPoints(records: ExperimentRecord[], threshold: number | null): RunPoint[] {
  return records.flatMap((r) => {
    const runs = r.runs ?? [];
    if (runs.length < 2) return [];
    return runs.flatMap((run, k) => {
      const v = run.valBpb;
      if (typeof v !== 'number' || !Number.isFinite(v) || (threshold !== null && v > threshold)) return [];
      const aria = `${r.id} run ${k + 1} of ${runs.length}, seed ${run.seed}: val_bpb ${formatScore(v)}`;
      return [{ n: r.n, status: r.status, valBpb: v, aria }];
    });
  });
}

/** The latest noise estimate: σ of the last record that carries one. */
export function latestSigma(records: ExperimentRecord[]): number | null {
  const sigma = [...records].reverse().find((r) => typeof r.sigma === 'number' && Number.isFinite(r.sigma))?.sigma;
  return sigma ?? null;
}

/** The y range: the scored points and runs inside the threshold, with a margin; diverged ones never stretch it. */
function yDomainOf(scored: ChartPoint[], runs: RunPoint[]): [number, number] | null {
  if (scored.length === 0) return null;
  const values = [...scored.map((p) => p.valBpb!), ...runs.map((r) => r.valBpb)];
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const pad = Math.max((hi - lo) * 0.06, Math.abs(hi) * 0.005, 1e-6);
  return [lo - pad, hi + pad];
}

/**
 * The step line has one vertex at the first kept experiment, two at every later one that lowered the
 * best (across, then down), and one at the last experiment, so it is drawn with straight segments and
 * its vertices can be counted.
 */
function bestLine(kept: ChartPoint[], lastN: number): { n: number; valBpb: number }[] {
  const best: { n: number; valBpb: number }[] = [];
  let current: number | null = null;
  for (const p of kept) {
    if (current === null) best.push({ n: p.n, valBpb: p.valBpb! });
    else if (p.valBpb! < current) best.push({ n: p.n, valBpb: current }, { n: p.n, valBpb: p.valBpb! });
    else continue;
    current = p.valBpb!;
  }
  if (current !== null && best.at(-1)!.n < lastN) best.push({ n: lastN, valBpb: current });
  return best;
}

/** What the chart shows, computed from the records alone. */
export function chartData(records: ExperimentRecord[]): ChartData {
  const sorted = [...records].sort((a, b) => a.n - b.n);
  const threshold = divergedThreshold(sorted);
  const points = sorted.map((r) => chartPoint(r, threshold));
  const scored = points.filter((p) => p.valBpb !== null && !p.diverged);
  const kept = scored.filter((p) => p.status === 'keep');
  const firstN = points[0]?.n ?? 0;
  const lastN = points.at(-1)?.n ?? 0;
  const runs = runPoints(sorted, threshold);
  return {
    tag: tagOf(records),
    points,
    scored,
    kept,
    discarded: scored.filter((p) => p.status !== 'keep'),
    diverged: points.filter((p) => p.diverged),
    unscored: points.filter((p) => p.valBpb === null),
    confirmed: kept.filter((p) => p.confirmed),
    runs,
    sigma: latestSigma(records),
    best: bestLine(points.filter((p) => p.status === 'keep' && p.valBpb !== null), lastN),
    threshold,
    xDomain: [firstN - 0.5, Math.max(lastN, firstN + 1) + 0.5],
    yDomain: yDomainOf(scored, runs),
  };
}

/** The figures on one line, what the marks mean on a second (one long line would widen the chart). */
function subtitle(data: ChartData): string[] {
  const bestNow = data.best.at(-1)?.valBpb;
  const figures = [
    bestNow === undefined ? 'nothing scored yet' : `best val_bpb ${formatScore(bestNow)}`,
    ...(data.sigma === null ? [] : [`noise σ ${formatScore(data.sigma)} between runs of one commit`]),
  ];
  const marks = [
    'line: best so far',
    ...(data.runs.length ? ['small dots: each run of a repeated experiment'] : []),
    ...(data.unscored.length ? ['marks on the x axis: no val_bpb'] : []),
    ...(data.diverged.length ? [`triangles on the top edge: diverged (val_bpb above ${shortScore(data.threshold!)})`] : []),
  ];
  return [figures.join('  ·  '), marks.join('  ·  ')];
}

/** The Vega-Lite spec of the progress chart. */
export function chartSpec(data: ChartData): TopLevelSpec {
  const x = {
    field: 'n',
    type: 'quantitative' as const,
    scale: { domain: data.xDomain, nice: false, zero: false },
    axis: { title: 'experiment #', tickMinStep: 1, format: 'd', grid: false },
  };
  const y = {
    field: 'valBpb',
    type: 'quantitative' as const,
    scale: { domain: data.yDomain ?? [0, 1], nice: false, zero: false },
    axis: { title: 'val_bpb (lower is better)', format: '.4f' },
  };
  const color = {
    field: 'status',
    type: 'nominal' as const,
    scale: { domain: ['keep', 'discard', 'crash'], range: [COLORS.keep, COLORS.discard, COLORS.crash] },
    legend: { ...LEGEND, labelExpr: "datum.label == 'crash' ? 'crash (no val_bpb)' : datum.label" },
  };
  const copies = (points: ChartPoint[]) => points.map((p) => ({ ...p })); // Vega tags the data objects it is given
  const top = { value: EDGE_PX };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `autoresearch ${data.tag}: ${data.points.length} experiments, ${data.kept.length} kept`,
      subtitle: subtitle(data),
      anchor: 'start',
    },
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    config: { font: FONT, view: { stroke: '#dddddd' } },
    layer: [
      {
        name: 'best',
        data: { values: data.best.map((v) => ({ ...v })) },
        mark: { type: 'line', color: COLORS.best, strokeWidth: 2, opacity: 0.7, interpolate: 'linear', clip: true,
          aria: false },
        encoding: { x, y },
      },
      {
        name: 'runs',
        data: { values: data.runs.map((r) => ({ ...r })) },
        mark: { type: 'point', shape: 'circle', filled: true, size: 14, opacity: 0.7, clip: true },
        encoding: { x, y, color, description: { field: 'aria' }, xOffset: { value: -RUN_OFFSET_PX } },
      },
      {
        name: 'discarded',
        data: { values: copies(data.discarded) },
        mark: { type: 'point', shape: 'circle', filled: true, size: 40, opacity: 0.7 },
        encoding: { x, y, color, description: { field: 'aria' } },
      },
      {
        name: 'crashed',
        data: { values: copies(data.unscored) },
        mark: { type: 'point', shape: 'triangle-down', filled: true, size: 70, opacity: 0.9 },
        encoding: { x, y: { value: HEIGHT - EDGE_PX }, color, description: { field: 'aria' } },
      },
      {
        name: 'diverged',
        data: { values: copies(data.diverged) },
        mark: { type: 'point', shape: 'triangle-up', filled: true, size: 70, opacity: 0.9 },
        encoding: { x, y: top, color, description: { field: 'aria' }, tooltip: { field: 'aria' } },
      },
      {
        name: 'divergedLabels',
        data: { values: copies(data.diverged) },
        mark: { type: 'text', align: 'left', baseline: 'middle', dx: 7, fontSize: 10, color: '#555555', aria: false },
        encoding: { x, y: top, text: { field: 'label' } },
      },
      {
        name: 'kept',
        data: { values: copies(data.kept) },
        mark: { type: 'point', shape: 'circle', filled: true, size: 110, stroke: 'black', strokeWidth: 0.8 },
        encoding: { x, y, color, description: { field: 'aria' } },
      },
      // Only a night with confirmed keeps gets the ring and its legend entry.
      ...(data.confirmed.length === 0 ? [] : [{
        name: 'confirmed',
        data: {
          values: data.confirmed.map((p) => ({
            n: p.n, valBpb: p.valBpb, ring: CONFIRMED, aria: `${p.id} ${CONFIRMED}, mean of ${p.runs} runs`,
          })),
        },
        mark: { type: 'point' as const, shape: 'circle', filled: false, size: 340, strokeWidth: 1.8 },
        encoding: {
          x, y, description: { field: 'aria' },
          stroke: {
            field: 'ring', type: 'nominal' as const, scale: { domain: [CONFIRMED], range: [COLORS.ring] },
            legend: { ...LEGEND, labelLimit: 240 },
          },
        },
      }]),
      {
        name: 'labels',
        data: { values: copies(data.kept) },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 6, dy: -6, angle: 340, fontSize: 10, color: '#1b5e20',
          aria: false },
        encoding: { x, y, text: { field: 'label' } },
      },
    ],
  };
}

export async function chartSvg(data: ChartData): Promise<string> {
  return renderSvg(chartSpec(data));
}
