// `report`: the night at a glance. A progress chart like the original autoresearch's (val_bpb per
// experiment, discarded points grey, kept points green and labelled, crashes marked on the x axis,
// diverged trainings marked on the top edge with their value, the running best as a step line; keeps
// confirmed by a second run ringed, each run of a repeated experiment a small dot) as SVG and PNG, and
// a summary in Markdown, written to the run's `results/<tag>/report/` in the research repo. Where the
// morning's questions were answered (verdict.json, ablation.json beside the results), the summary leads
// with the verdict and has the ablation's table, and ablation.svg/.png show what each kept change was
// worth. Charts are drawn by Vega-Lite, rendered without a browser (Vega's headless SVG renderer) and
// rasterized by resvg (a prebuilt binary from npm).
import { Resvg } from '@resvg/resvg-js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TopLevelSpec } from 'vega-lite/build/index';
import type { writeMorning } from '../activities/morning';
import {
  badLineWarning, divergedThreshold, formatScore, readRecordsChecked, resultsDir, shortScore,
} from '../activities/results';
import {
  NO_COMMIT, RESULTS_JSONL, type Ablation, type ExperimentRecord, type ExperimentStatus, type Interval, type Verdict,
} from '../workflows/types';
import { UserError } from './errors';

export const REPORT_DIR = 'report'; // inside the run's results directory
export const CHART_SVG = 'progress.svg';
export const CHART_PNG = 'progress.png';
export const ABLATION_SVG = 'ablation.svg';
export const ABLATION_PNG = 'ablation.png';
export const SUMMARY_MD = 'summary.md';
// Written by `verify` and `ablate` beside results.jsonl; typed by writeMorning's own names, so the two never drift.
export const VERDICT_JSON: Parameters<typeof writeMorning>[1] = 'verdict.json';
export const ABLATION_JSON: Parameters<typeof writeMorning>[1] = 'ablation.json';

const LABEL_MAX = 40; // characters of a kept experiment's description shown on the chart
const WIDTH = 900;
const HEIGHT = 420;
const ABLATION_WIDTH = 560; // the plot of the ablation chart; its change labels sit to its left
const ABLATION_ROW_PX = 34; // height per kept change
const ABLATION_MIN_HEIGHT = 120;
const RUN_OFFSET_PX = 11; // a run's dot sits this far left of its experiment's point, so the point does not hide it
const EDGE_PX = 6; // pixels between a mark on the chart's edge (crash, diverged) and the border
const PNG_SCALE = 2; // the PNG at twice the SVG's size, for sharp text
const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';
const OVERHEAD_IS = 'proposing, committing, waiting for a slot, start-up and evaluation';
const COLORS: Record<string, string> = {
  keep: '#2ca02c', discard: '#9e9e9e', crash: '#d62728', best: '#2ca02c', ring: '#1b5e20',
  helped: '#2ca02c', hurt: '#d62728', unclear: '#9e9e9e', 'not measured': '#8d6e63',
};
const CONFIRMED = 'kept after confirmation'; // the ring's legend entry
// Its legend goes under the status legend, not beside it. Vega-Lite hands this Vega setting on, but its
// types leave it out.
const RING_UNDER_STATUS = { 'top-right': { direction: 'vertical', anchor: 'end' } } as never;
const EFFECTS = ['helped', 'hurt', 'unclear', 'not measured'] as const;

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

function scoredValue(r: ExperimentRecord): number | null {
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
    legend: {
      title: null, orient: 'top-right' as const, fillColor: 'white', padding: 6,
      labelExpr: "datum.label == 'crash' ? 'crash (no val_bpb)' : datum.label",
    },
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
    config: { font: FONT, view: { stroke: '#dddddd' }, legend: { layout: RING_UNDER_STATUS } },
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
            legend: { title: null, orient: 'top-right' as const, fillColor: 'white', padding: 6, labelLimit: 240 },
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

// ---------------------------------------------------------------------------------------------------------------
// The morning: what `ablate` measured, as rows for the summary's table and its chart.

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

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
// −0 (a difference of equal means) would print as -0.000000: x === 0 holds for it, and 0 takes its place.
const signed = (x: number) => `${x > 0 ? '+' : ''}${formatScore(x === 0 ? 0 : x)}`;

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

/**
 * Vega and Vega-Lite are ES modules with top-level await: they must be loaded with a real import(). A
 * CLI compiled to CommonJS turns import() into require(), which cannot load them; the body of a
 * Function is left alone by every compiler. The path is resolved first, so any working directory works.
 */
const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;

async function loadVega() {
  const load = (name: string) => importModule(pathToFileURL(require.resolve(name)).href);
  const vega = (await load('vega')) as typeof import('vega');
  const vegaLite = (await load('vega-lite')) as typeof import('vega-lite/build/index');
  return { vega, vegaLite };
}

/** Any of the report's Vega-Lite charts as SVG. */
export async function renderSvg(chart: TopLevelSpec): Promise<string> {
  const { vega, vegaLite } = await loadVega();
  const { spec } = vegaLite.compile(chart);
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function chartSvg(data: ChartData): Promise<string> {
  return renderSvg(chartSpec(data));
}

export function svgToPng(svg: string): Buffer {
  const font = { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans' };
  const resvg = new Resvg(svg, { fitTo: { mode: 'zoom', value: PNG_SCALE }, font });
  return resvg.render().asPng();
}

/** Whether resvg finds a font on this machine; without one, the PNG's text is missing. */
export function pngHasText(): boolean {
  const probe = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    + '<text x="2" y="16" font-size="16" font-family="sans-serif">Hg</text></svg>';
  const pixels = new Resvg(probe, { font: { loadSystemFonts: true } }).render().pixels;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}

const pct = (part: number, whole: number) => (whole === 0 ? '-' : `${((part / whole) * 100).toFixed(2)}%`);
const sec = (s: number) => s.toFixed(1);

function human(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

const cell = (text: string) => text.replace(/[\r\n]+/g, ' ').replace(/\|/g, '\\|').trim();

/** The kept changes in the order they were decided, each with its delta against the best before it. */
export function keptChanges(
  records: ExperimentRecord[],
): { record: ExperimentRecord; previous: number | null; delta: number | null }[] {
  let best: number | null = null;
  const out = [];
  for (const record of records) {
    const v = scoredValue(record);
    if (record.status !== 'keep' || v === null) continue;
    out.push({ record, previous: best, delta: best === null ? null : v - best });
    if (best === null || v < best) best = v;
  }
  return out;
}

function timeLines(records: ExperimentRecord[]): string[] {
  const training = records.reduce((sum, r) => sum + (r.trainingSeconds || 0), 0);
  const starts = records.map((r) => Date.parse(r.startedAt)).filter(Number.isFinite);
  const ends = records.map((r) => Date.parse(r.finishedAt)).filter(Number.isFinite);
  const wall = starts.length && ends.length ? Math.max(0, (Math.max(...ends) - Math.min(...starts)) / 1000) : 0;
  const overhead = wall - training;
  return [
    `- training seconds: ${sec(training)} (${human(training)}, summed over experiments)`,
    `- wall seconds: ${sec(wall)} (${human(wall)}, first start to last finish)`,
    overhead >= 0
      ? `- overhead seconds: ${sec(overhead)} (${human(overhead)}, ${pct(overhead, wall)} of wall time: ${OVERHEAD_IS})`
      : `- overhead seconds: - (experiments trained in parallel: ${sec(training)} s of training in ${sec(wall)} s of wall time)`,
  ];
}

function scoreLines(records: ExperimentRecord[]): string[] {
  const baseline = records.find((r) => r.n === 0) ?? null;
  const baselineValue = baseline ? scoredValue(baseline) : null;
  const changes = keptChanges(records);
  const bestChange = changes.reduce<(typeof changes)[number] | null>(
    (b, c) => (b === null || scoredValue(c.record)! < scoredValue(b.record)! ? c : b),
    null,
  );
  const bestValue = bestChange ? scoredValue(bestChange.record)! : null;
  const gain = baselineValue === null || bestValue === null ? null : baselineValue - bestValue;
  const bestOf = bestChange ? ` (${bestChange.record.id}, commit ${shortCommit(bestChange.record)})` : '';
  return [
    `- baseline val_bpb: ${baselineValue === null ? '-' : formatScore(baselineValue)}${baseline ? ` (${baseline.id})` : ''}`,
    `- best val_bpb: ${bestValue === null ? '-' : formatScore(bestValue)}${bestOf}`,
    `- improvement: ${gain === null ? '-' : `${formatScore(gain)} (${pct(gain, baselineValue!)} lower than the baseline)`}`,
  ];
}

const shortCommit = (r: ExperimentRecord) => (r.commit ?? NO_COMMIT).slice(0, 7);

function keptTable(records: ExperimentRecord[]): string[] {
  return [
    '| # | experiment | commit | val_bpb | delta vs previous best | description |',
    '|---|---|---|---|---|---|',
    ...keptChanges(records).map(({ record, previous, delta }, i) => {
      const sign = delta !== null && delta > 0 ? '+' : '';
      const d = delta === null || previous === null
        ? 'baseline'
        : `${sign}${formatScore(delta)} (${sign}${pct(delta, previous)})`;
      const value = formatScore(scoredValue(record)!) + runsNote(record);
      return `| ${i + 1} | ${record.id} | ${shortCommit(record)} | ${value} | ${d} | ${cell(record.description)} |`;
    }),
  ];
}

/** The diverged trainings: a `- diverged:` line always, and their table when there are any. */
/** Crashes that point at a candidate gaming the scorer rather than training: read their diffs first. */
function suspectLines(records: ExperimentRecord[]): string[] {
  const suspect = records.filter((r) => r.status === 'crash' && /^(implausible score|tampered harness|evaluation failed: tampered harness)/.test(r.reason));
  if (suspect.length === 0) return [];
  return [`- suspect: ${suspect.length} crash(es) for an implausible score or a tampered harness (${suspect.map((r) => r.id).join(', ')}): a candidate may be gaming the scorer; read their diffs`];
}

function divergedLines(records: ExperimentRecord[]): { key: string; section: string[] } {
  const threshold = divergedThreshold(records);
  const diverged = records
    .filter((r) => threshold !== null && (scoredValue(r) ?? -Infinity) > threshold)
    .sort((a, b) => a.n - b.n);
  if (diverged.length === 0) return { key: '- diverged: 0', section: [] };
  return {
    key: `- diverged: ${diverged.length} (val_bpb above ${formatScore(threshold)}: ${diverged.map((r) => r.id).join(', ')})`,
    section: [
      '## Diverged',
      '',
      `Scored far above the baseline (the rule: baseline + max(0.1, half the baseline, 10 median absolute deviations));`,
      'drawn as triangles on the top edge of the chart, with their value.',
      '',
      '| experiment | commit | val_bpb | status | description |',
      '|---|---|---|---|---|',
      ...diverged.map((r) => {
        return `| ${r.id} | ${shortCommit(r)} | ${shortScore(r.valBpb!)} | ${r.status} | ${cell(r.description)} |`;
      }),
      '',
    ],
  };
}

/** The near-misses: a `- near-misses:` line always, and their table (runs, mean, why) when there are any. */
function nearMissLines(records: ExperimentRecord[]): { key: string; section: string[] } {
  const misses = records.filter((r) => r.nearMiss);
  if (misses.length === 0) return { key: '- near-misses: 0', section: [] };
  return {
    key: `- near-misses: ${misses.length} (${misses.map((r) => r.id).join(', ')})`,
    section: [
      '## Near-misses',
      '',
      'Beat their parent over more than one run, but not by enough to keep: leads for a later night (each commit',
      'keeps its ref, `refs/autoresearch/<tag>/<experiment>`, and its row in results.jsonl says `"nearMiss": true`).',
      '',
      '| experiment | commit | val_bpb | runs | description | why not kept |',
      '|---|---|---|---|---|---|',
      ...misses.map((r) => `| ${r.id} | ${shortCommit(r)} | ${formatScore(r.valBpb!)} | ${r.runs?.length ?? 1} | ${cell(r.description)} | ${cell(r.reason)} |`),
      '',
    ],
  };
}

/** `- noise:` from the records' σ; nothing for records written before runs were recorded. */
function noiseLines(records: ExperimentRecord[]): string[] {
  const sigma = latestSigma(records);
  if (sigma === null) {
    return records.some((r) => r.runs) ? ['- noise: not measured (no commit was trained twice: --baseline-runs 1)'] : [];
  }
  // σ pools the scored experiments trained more than once: the trainings it was computed from.
  const trainings = records
    .filter((r) => r.status !== 'crash')
    .map((r) => (r.runs ?? []).filter((run) => finite(run.valBpb)).length)
    .filter((k) => k >= 2)
    .reduce((sum, k) => sum + k, 0);
  return [`- noise: σ = ${formatScore(sigma)} val_bpb between runs of one commit (from ${trainings} trainings)`];
}

/** `- confirmation runs:` the candidates trained again before they were decided, and what became of them. */
function confirmationLines(records: ExperimentRecord[]): string[] {
  if (!records.some((r) => r.runs)) return [];
  const repeated = records.filter((r) => r.n > 0 && (r.runs?.length ?? 0) > 1);
  const ids = (rs: ExperimentRecord[]) => (rs.length ? ` (${rs.map((r) => r.id).join(', ')})` : '');
  const kept = repeated.filter((r) => r.confirmed && r.status === 'keep');
  const not = repeated.filter((r) => !kept.includes(r));
  const outcomes = `${kept.length} ${CONFIRMED}${ids(kept)}, ${not.length} not confirmed${ids(not)}`;
  return [`- confirmation runs: ${repeated.length} candidates trained again: ${outcomes}`];
}

/** What a kept row's val_bpb is: one run's score, or the mean of several. */
function runsNote(r: ExperimentRecord): string {
  const runs = r.runs?.length ?? 1;
  if (r.confirmed) return ` (confirmed, ${runs} runs)`;
  return runs > 1 ? ` (mean of ${runs} runs)` : '';
}

/** A morning answer about a commit that is no longer the night's best (the run went on after it). */
function staleNote(commit: string, records: ExperimentRecord[]): string {
  const tip = [...records].reverse().find((r) => r.status === 'keep' && r.commit)?.commit;
  if (!tip || tip.startsWith(commit) || commit.startsWith(tip)) return '';
  const now = tip.slice(0, 7);
  return ` Its best, ${commit.slice(0, 7)}, is no longer the night's best (${now}): ask again for a current answer.`;
}

/** The summary's lead: `verdict: <line>`, then whether its interval excludes zero. */
function verdictLines(v: Verdict | null, records: ExperimentRecord[]): string[] {
  if (v === null) return [];
  const { low, high } = v.gain;
  const runs = `${v.baseline.n} runs of the baseline and ${v.best.n} of the best, on fresh seeds`;
  const sentence = !finite(low) || !finite(high)
    ? `No interval: it needs at least two scored runs of each (${runs}).`
    : high < 0
      ? `The 95% interval of the gain excludes zero: the best really beats the baseline (${runs}).`
      : low > 0
        ? `The 95% interval of the gain excludes zero on the wrong side: the best is worse than the baseline (${runs}).`
        : `The 95% interval of the gain includes zero: the night's gain cannot be told from noise (${runs}).`;
  const crashes = v.crashes > 0 ? ` ${v.crashes} of the verifying trainings crashed and are left out.` : '';
  return [`verdict: ${v.line}`, '', sentence + crashes + staleNote(v.best.commit, records), ''];
}

/** The ablation: a `- ablation:` line, and its table under the kept changes. */
function ablationLines(ablation: Ablation | null, records: ExperimentRecord[]): { key: string[]; section: string[] } {
  if (ablation === null) return { key: [], section: [] };
  const rows = ablationRows(ablation, records);
  const counts = EFFECTS.map((e) => `${rows.filter((r) => r.effect === e).length} ${e}`).join(', ');
  const best = ablation.best;
  const bestHalf = finite(best.low) && finite(best.high) ? ` ± ${formatScore((best.high - best.low) / 2)}` : '';
  return {
    key: [`- ablation: ${rows.length} kept changes (${counts}); chart: ${ABLATION_SVG} (also ${ABLATION_PNG})`],
    section: [
      '## Ablation',
      '',
      `The best (${best.commit.slice(0, 7)}, val_bpb ${formatScore(best.mean)}${bestHalf}, n=${best.n}) trained again`,
      'without each kept change, on fresh seeds. A change\'s contribution is val_bpb without it minus with it,',
      'with its 95% interval: "helped" or "hurt" where the interval excludes zero, "unclear" where it does not.'
        + staleNote(best.commit, records),
      '',
      '| experiment | contribution | 95% interval | runs | effect | description |',
      '|---|---|---|---|---|---|',
      ...rows.map((r) => {
        const c = r.contribution;
        const half = c && r.bounded ? ` ± ${formatScore((c.high - c.low) / 2)}` : '';
        const value = c === null ? '-' : `${signed(c.mean)}${half}`;
        const bounds = c && r.bounded ? `[${signed(c.low)}, ${signed(c.high)}]` : '- (needs two runs of each)';
        const interval = c === null ? '-' : bounds;
        const effect = r.problem ?? r.effect;
        return `| ${r.change} | ${value} | ${interval} | ${c?.n ?? '-'} | ${cell(effect)} | ${cell(r.description)} |`;
      }),
      '',
      `![what each kept change is worth](${ABLATION_SVG})`,
      '',
    ],
  };
}

/** verify's and ablate's answers, where they were asked. */
export interface MorningAnswers {
  verdict?: Verdict | null;
  ablation?: Ablation | null;
}

/**
 * summary.md: the verdict where there is one, fixed `- key: value` lines, so scripts can grep them, then
 * the kept changes, the ablation and the diverged trainings.
 */
export function summaryMarkdown(records: ExperimentRecord[], notes: string[] = [], morning: MorningAnswers = {}): string {
  const tag = tagOf(records);
  const count = (s: ExperimentStatus) => records.filter((r) => r.status === s).length;
  const diverged = divergedLines(records);
  const ablation = ablationLines(morning.ablation ?? null, records);
  const misses = nearMissLines(records);
  const lines = [
    `# autoresearch report: ${tag}`,
    '',
    ...verdictLines(morning.verdict ?? null, records),
    `- tag: ${tag}`,
    `- experiments: ${records.length} (keep: ${count('keep')}, discard: ${count('discard')}, crash: ${count('crash')})`,
    ...scoreLines(records),
    ...noiseLines(records),
    ...confirmationLines(records),
    misses.key,
    diverged.key,
    ...suspectLines(records),
    ...timeLines(records),
    `- tokens: ${records.reduce((sum, r) => sum + (r.tokens || 0), 0)}`,
    `- chart: ${CHART_SVG} (also ${CHART_PNG})`,
    ...ablation.key,
    ...notes.map((n) => `- note: ${n}`),
    '',
    '## Kept changes',
    '',
    ...keptTable(records),
    '',
    ...ablation.section,
    ...misses.section,
    ...diverged.section,
    '## Progress',
    '',
    `![val_bpb per experiment](${CHART_SVG})`,
    '',
  ];
  return lines.join('\n');
}

/** Where `report` wrote its files; the ablation chart only where `ablate` has answered. */
export interface ReportPaths {
  svg: string;
  png: string;
  markdown: string;
  ablationSvg?: string;
  ablationPng?: string;
}

/**
 * verdict.json or ablation.json beside the results: null where that question was not asked; one warning,
 * and null, where the file is not such an answer (a hand edit, a torn write), so the rest is still reported.
 */
async function readAnswer<T>(
  path: string,
  looksRight: (v: Record<string, unknown>) => boolean,
  warn: (line: string) => void,
): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null && looksRight(value as Record<string, unknown>)) return value as T;
  } catch {
    // reported below, like a value of the wrong shape
  }
  warn(`warning: ${path} skipped: not what \`verify\` or \`ablate\` writes`);
  return null;
}

async function readMorning(dir: string, warn: (line: string) => void): Promise<Required<MorningAnswers>> {
  const verdict = await readAnswer<Verdict>(join(dir, VERDICT_JSON), (v) => typeof v.line === 'string'
    && typeof v.gain === 'object' && typeof v.best === 'object' && typeof v.baseline === 'object', warn);
  const ablation = await readAnswer<Ablation>(join(dir, ABLATION_JSON), (v) => Array.isArray(v.changes)
    && typeof v.best === 'object' && v.best !== null, warn);
  return { verdict, ablation };
}

async function writeChart(spec: TopLevelSpec, svgPath: string, pngPath: string): Promise<void> {
  const svg = await renderSvg(spec);
  await writeFile(svgPath, svg);
  await writeFile(pngPath, svgToPng(svg));
}

/**
 * Writes progress.svg, progress.png and summary.md into results/<tag>/report/ of the research repo,
 * and ablation.svg/.png where `ablate` has answered; each results.jsonl line that is not a record is one warning.
 */
export async function writeReport(
  repo: string,
  tag: string,
  warn: (line: string) => void = console.error,
): Promise<ReportPaths> {
  const root = resolve(repo);
  const { records, bad } = await readRecordsChecked(root, tag);
  for (const line of bad) warn(badLineWarning(root, tag, line));
  if (records.length === 0) {
    throw new UserError(`no experiments in ${join(resultsDir(root, tag), RESULTS_JSONL)} yet: nothing to report`);
  }
  const morning = await readMorning(resultsDir(root, tag), warn);
  const dir = join(resultsDir(root, tag), REPORT_DIR);
  await mkdir(dir, { recursive: true });
  const paths: ReportPaths = { svg: join(dir, CHART_SVG), png: join(dir, CHART_PNG), markdown: join(dir, SUMMARY_MD) };
  await writeChart(chartSpec(chartData(records)), paths.svg, paths.png);
  if (morning.ablation) {
    paths.ablationSvg = join(dir, ABLATION_SVG);
    paths.ablationPng = join(dir, ABLATION_PNG);
    const rows = ablationRows(morning.ablation, records);
    await writeChart(ablationSpec(rows, morning.ablation), paths.ablationSvg, paths.ablationPng);
  }
  const noFonts = 'no fonts were found on this machine, so the PNGs have no text; the SVGs have it all';
  const notes = pngHasText() ? [] : [noFonts];
  await writeFile(paths.markdown, summaryMarkdown(records, notes, morning));
  return paths;
}

/** What `report TAG` prints: every file it wrote. */
export function reportLines(paths: ReportPaths): string {
  const charts = [paths.svg, paths.png, paths.ablationSvg, paths.ablationPng].filter((p): p is string => p !== undefined);
  const [first, ...more] = charts;
  return [`chart:   ${first}`, ...more.map((p) => `         ${p}`), `summary: ${paths.markdown}`].join('\n');
}
