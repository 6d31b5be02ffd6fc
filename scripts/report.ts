// `report`: the night at a glance. A progress chart like the original autoresearch's (val_bpb per
// experiment, discarded points grey, kept points green and labelled, crashes marked on the x axis,
// diverged trainings marked on the top edge with their value, the running best as a step line) as SVG
// and PNG, and a summary in Markdown, written to the run's `results/<tag>/report/` in the research
// repo. Charts are drawn by Vega-Lite, rendered without a browser (Vega's headless SVG renderer) and
// rasterized by resvg (a prebuilt binary from npm).
import { Resvg } from '@resvg/resvg-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TopLevelSpec } from 'vega-lite/build/index';
import {
  badLineWarning, divergedThreshold, formatScore, readRecordsChecked, resultsDir, shortScore,
} from '../activities/results';
import { NO_COMMIT, RESULTS_JSONL, type ExperimentRecord, type ExperimentStatus } from '../workflows/types';
import { UserError } from './errors';

export const REPORT_DIR = 'report'; // inside the run's results directory
export const CHART_SVG = 'progress.svg';
export const CHART_PNG = 'progress.png';
export const SUMMARY_MD = 'summary.md';

const LABEL_MAX = 40; // characters of a kept experiment's description shown on the chart
const WIDTH = 900;
const HEIGHT = 420;
const EDGE_PX = 6; // pixels between a mark on the chart's edge (crash, diverged) and the border
const PNG_SCALE = 2; // the PNG at twice the SVG's size, for sharp text
const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';
const OVERHEAD_IS = 'proposing, committing, waiting for a slot, start-up and evaluation';
const COLORS: Record<string, string> = { keep: '#2ca02c', discard: '#9e9e9e', crash: '#d62728', best: '#2ca02c' };

export interface ChartPoint {
  n: number;
  id: string;
  status: ExperimentStatus;
  valBpb: number | null; // null: the experiment did not score (a crash, or a cancelled discard)
  diverged: boolean; // valBpb above divergedThreshold: drawn on the top edge, its value beside it
  description: string;
  label: string; // kept: the description, truncated; diverged: the value, e.g. `2.2e33`
  aria: string; // the mark's accessible description: `<id> <status> val_bpb <value>`
}

export interface ChartData {
  tag: string;
  points: ChartPoint[]; // every experiment, by experiment number
  scored: ChartPoint[]; // those with a val_bpb inside the chart's range, kept or discarded
  kept: ChartPoint[]; // scored and kept: highlighted and labelled
  discarded: ChartPoint[]; // scored and discarded
  diverged: ChartPoint[]; // a val_bpb above the threshold: marked on the top edge
  unscored: ChartPoint[]; // no val_bpb (crashes, cancelled): marked along the x axis
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
  };
}

/** The y range: the scored points inside the threshold, with a margin; diverged ones never stretch it. */
function yDomainOf(scored: ChartPoint[]): [number, number] | null {
  if (scored.length === 0) return null;
  const values = scored.map((p) => p.valBpb!);
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
  return {
    tag: tagOf(records),
    points,
    scored,
    kept,
    discarded: scored.filter((p) => p.status !== 'keep'),
    diverged: points.filter((p) => p.diverged),
    unscored: points.filter((p) => p.valBpb === null),
    best: bestLine(points.filter((p) => p.status === 'keep' && p.valBpb !== null), lastN),
    threshold,
    xDomain: [firstN - 0.5, Math.max(lastN, firstN + 1) + 0.5],
    yDomain: yDomainOf(scored),
  };
}

function subtitle(data: ChartData): string {
  const bestNow = data.best.at(-1)?.valBpb;
  return [
    bestNow === undefined ? 'nothing scored yet' : `best val_bpb ${formatScore(bestNow)}`,
    'line: best so far',
    ...(data.unscored.length ? ['marks on the x axis: no val_bpb'] : []),
    ...(data.diverged.length ? [`triangles on the top edge: diverged (val_bpb above ${shortScore(data.threshold!)})`] : []),
  ].join('  ·  ');
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

export async function chartSvg(data: ChartData): Promise<string> {
  const { vega, vegaLite } = await loadVega();
  const { spec } = vegaLite.compile(chartSpec(data));
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
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
      const value = formatScore(scoredValue(record)!);
      return `| ${i + 1} | ${record.id} | ${shortCommit(record)} | ${value} | ${d} | ${cell(record.description)} |`;
    }),
  ];
}

/** The diverged trainings: a `- diverged:` line always, and their table when there are any. */
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

/** summary.md: fixed `- key: value` lines first, so scripts can grep them, then the kept changes. */
export function summaryMarkdown(records: ExperimentRecord[], notes: string[] = []): string {
  const tag = tagOf(records);
  const count = (s: ExperimentStatus) => records.filter((r) => r.status === s).length;
  const diverged = divergedLines(records);
  const lines = [
    `# autoresearch report: ${tag}`,
    '',
    `- tag: ${tag}`,
    `- experiments: ${records.length} (keep: ${count('keep')}, discard: ${count('discard')}, crash: ${count('crash')})`,
    ...scoreLines(records),
    diverged.key,
    ...timeLines(records),
    `- tokens: ${records.reduce((sum, r) => sum + (r.tokens || 0), 0)}`,
    `- chart: ${CHART_SVG} (also ${CHART_PNG})`,
    ...notes.map((n) => `- note: ${n}`),
    '',
    '## Kept changes',
    '',
    ...keptTable(records),
    '',
    ...diverged.section,
    '## Progress',
    '',
    `![val_bpb per experiment](${CHART_SVG})`,
    '',
  ];
  return lines.join('\n');
}

/**
 * Writes progress.svg, progress.png and summary.md into results/<tag>/report/ of the research repo;
 * each results.jsonl line that is not a record is one warning.
 */
export async function writeReport(
  repo: string,
  tag: string,
  warn: (line: string) => void = console.error,
): Promise<{ svg: string; png: string; markdown: string }> {
  const root = resolve(repo);
  const { records, bad } = await readRecordsChecked(root, tag);
  for (const line of bad) warn(badLineWarning(root, tag, line));
  if (records.length === 0) {
    throw new UserError(`no experiments in ${join(resultsDir(root, tag), RESULTS_JSONL)} yet: nothing to report`);
  }
  const dir = join(resultsDir(root, tag), REPORT_DIR);
  await mkdir(dir, { recursive: true });
  const paths = { svg: join(dir, CHART_SVG), png: join(dir, CHART_PNG), markdown: join(dir, SUMMARY_MD) };
  const svg = await chartSvg(chartData(records));
  await writeFile(paths.svg, svg);
  await writeFile(paths.png, svgToPng(svg));
  const noFonts = `no fonts were found on this machine, so ${CHART_PNG} has no text; ${CHART_SVG} has it all`;
  const notes = pngHasText() ? [] : [noFonts];
  await writeFile(paths.markdown, summaryMarkdown(records, notes));
  return paths;
}
