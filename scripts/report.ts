// `report`: the night at a glance. A progress chart like the original autoresearch's (val_bpb per
// experiment, discarded points grey, kept points green and labelled, crashes marked on the x axis,
// the running best as a step line) as SVG and PNG, and a summary in Markdown, written to the
// research repo's untracked `report/` folder. Charts are drawn by Vega-Lite, rendered without a
// browser (Vega's headless SVG renderer) and rasterized by resvg (a prebuilt binary from npm).
import { Resvg } from '@resvg/resvg-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite/build/index';
import { readRecords } from '../activities/results';
import { NO_COMMIT, RESULTS_JSONL, type ExperimentRecord, type ExperimentStatus } from '../workflows/types';
import { UserError } from './errors';

export const REPORT_DIR = 'report';
export const CHART_SVG = 'progress.svg';
export const CHART_PNG = 'progress.png';
export const SUMMARY_MD = 'summary.md';

const LABEL_MAX = 40; // characters of a kept experiment's description shown on the chart
const WIDTH = 900;
const HEIGHT = 420;
const PNG_SCALE = 2; // the PNG at twice the SVG's size, for sharp text
const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';
const COLORS: Record<string, string> = { keep: '#2ca02c', discard: '#9e9e9e', crash: '#d62728', best: '#2ca02c' };

export interface ChartPoint {
  n: number;
  id: string;
  status: ExperimentStatus;
  valBpb: number | null; // null: the experiment did not score (a crash, or a cancelled discard)
  y: number | null; // where it is drawn: valBpb, or the top of the chart when it lies above it
  clipped: boolean; // valBpb lies above the chart's range (drawn as a triangle at the top)
  description: string;
  label: string; // the description, truncated for the chart
  aria: string; // the mark's accessible description: `<id> <status> val_bpb <value>`
}

export interface ChartData {
  tag: string;
  points: ChartPoint[]; // every experiment, by experiment number
  scored: ChartPoint[]; // those with a val_bpb, kept or discarded
  kept: ChartPoint[]; // scored and kept: highlighted and labelled
  discarded: ChartPoint[]; // scored and discarded
  unscored: ChartPoint[]; // no val_bpb (crashes, cancelled): marked along the x axis
  best: { n: number; valBpb: number }[]; // the running best's step line, vertex by vertex
  xDomain: [number, number];
  yDomain: [number, number] | null; // null when nothing scored
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

/**
 * What the chart shows, computed from the records alone. The step line has one vertex at the first
 * kept experiment, two at every later one that lowered the best (across, then down), and one at the
 * last experiment, so it is drawn with straight segments and its vertices can be counted.
 */
export function chartData(records: ExperimentRecord[]): ChartData {
  const sorted = [...records].sort((a, b) => a.n - b.n);
  const values = sorted.map(scoredValue).filter((v): v is number => v !== null);
  const keptValues = sorted.filter((r) => r.status === 'keep').map(scoredValue).filter((v): v is number => v !== null);

  // The y range: every scored point, but a diverged outlier must not squash the rest: points more
  // than the kept ones' spread above the highest kept one are drawn at the top edge as triangles.
  let yDomain: [number, number] | null = null;
  let top = 0;
  if (values.length > 0) {
    const lo = Math.min(...values);
    const anchorHi = keptValues.length > 0 ? Math.max(...keptValues) : Math.max(...values);
    const cap = anchorHi + Math.max(anchorHi - lo, Math.abs(anchorHi) * 0.02, 1e-6);
    top = Math.max(anchorHi, ...values.filter((v) => v <= cap));
    const pad = Math.max((top - lo) * 0.06, Math.abs(top) * 0.005, 1e-6);
    yDomain = [lo - pad, top + pad];
  }

  const points: ChartPoint[] = sorted.map((r) => {
    const valBpb = scoredValue(r);
    const clipped = valBpb !== null && valBpb > top;
    return {
      n: r.n,
      id: r.id,
      status: r.status,
      valBpb,
      y: valBpb === null ? null : clipped ? top : valBpb,
      clipped,
      description: r.description,
      label: truncate(r.description),
      aria: `${r.id} ${r.status} val_bpb ${valBpb === null ? 'none' : valBpb.toFixed(6)}`,
    };
  });
  const scored = points.filter((p) => p.valBpb !== null);
  const kept = scored.filter((p) => p.status === 'keep');

  const best: { n: number; valBpb: number }[] = [];
  let current: number | null = null;
  for (const p of kept) {
    if (current === null) best.push({ n: p.n, valBpb: p.valBpb! });
    else if (p.valBpb! < current) best.push({ n: p.n, valBpb: current }, { n: p.n, valBpb: p.valBpb! });
    else continue;
    current = p.valBpb!;
  }
  const lastN = points.at(-1)?.n ?? 0;
  if (current !== null && best.at(-1)!.n < lastN) best.push({ n: lastN, valBpb: current });

  const firstN = points[0]?.n ?? 0;
  return {
    tag: tagOf(records),
    points,
    scored,
    kept,
    discarded: scored.filter((p) => p.status !== 'keep'),
    unscored: points.filter((p) => p.valBpb === null),
    best,
    xDomain: [firstN - 0.5, Math.max(lastN, firstN + 1) + 0.5],
    yDomain,
  };
}

/** The Vega-Lite spec of the progress chart. */
export function chartSpec(data: ChartData): TopLevelSpec {
  const bestNow = data.best.at(-1)?.valBpb;
  const x = {
    field: 'n',
    type: 'quantitative' as const,
    scale: { domain: data.xDomain, nice: false, zero: false },
    axis: { title: 'experiment #', tickMinStep: 1, format: 'd', grid: false },
  };
  const y = {
    field: 'y',
    type: 'quantitative' as const,
    scale: { domain: data.yDomain ?? [0, 1], nice: false, zero: false },
    axis: { title: 'val_bpb (lower is better)', format: '.4f' },
  };
  const color = {
    field: 'status',
    type: 'nominal' as const,
    scale: { domain: ['keep', 'discard', 'crash'], range: [COLORS.keep, COLORS.discard, COLORS.crash] },
    legend: { title: null, orient: 'top-right' as const, fillColor: 'white', padding: 6, labelExpr: "datum.label == 'crash' ? 'crash (no val_bpb)' : datum.label" },
  };
  const shape = { field: 'shape', type: 'nominal' as const, scale: null, legend: null };
  // Copies: Vega tags the data objects it is given.
  const withShape = (points: ChartPoint[], base: string) => points.map((p) => ({ ...p, shape: p.clipped ? 'triangle-up' : base }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `autoresearch ${data.tag}: ${data.points.length} experiments, ${data.kept.length} kept`,
      subtitle: [
        bestNow === undefined ? 'nothing scored yet' : `best val_bpb ${bestNow.toFixed(6)}`,
        'line: best so far',
        ...(data.unscored.length ? ['marks on the x axis: no val_bpb'] : []),
        ...(data.scored.some((p) => p.clipped) ? ['triangles at the top: above the range'] : []),
      ].join('  ·  '),
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
        mark: { type: 'line', color: COLORS.best, strokeWidth: 2, opacity: 0.7, interpolate: 'linear', aria: false },
        encoding: { x, y: { ...y, field: 'valBpb' } },
      },
      {
        name: 'discarded',
        data: { values: withShape(data.discarded, 'circle') },
        mark: { type: 'point', filled: true, size: 40, opacity: 0.7 },
        encoding: { x, y, color, shape, description: { field: 'aria' } },
      },
      {
        name: 'crashed',
        data: { values: data.unscored.map((p) => ({ ...p })) },
        mark: { type: 'point', shape: 'triangle-down', filled: true, size: 70, opacity: 0.9 },
        encoding: { x, y: { value: HEIGHT - 6 }, color, description: { field: 'aria' } },
      },
      {
        name: 'kept',
        data: { values: withShape(data.kept, 'circle') },
        mark: { type: 'point', filled: true, size: 110, stroke: 'black', strokeWidth: 0.8 },
        encoding: { x, y, color, shape, description: { field: 'aria' } },
      },
      {
        name: 'labels',
        data: { values: data.kept.map((p) => ({ ...p })) },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 6, dy: -6, angle: 340, fontSize: 10, color: '#1b5e20', aria: false },
        encoding: { x, y, text: { field: 'label' } },
      },
    ],
  };
}

/** Vega and Vega-Lite are ES modules with top-level await: loaded with import(), once. */
async function loadVega() {
  const vega = await import('vega');
  const vegaLite = (await import('vega-lite' as string)) as typeof import('vega-lite/build/index');
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
  const resvg = new Resvg(svg, { fitTo: { mode: 'zoom', value: PNG_SCALE }, font: { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans' } });
  return resvg.render().asPng();
}

/** Whether resvg finds a font on this machine; without one, the PNG's text is missing. */
export function pngHasText(): boolean {
  const probe = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text x="2" y="16" font-size="16" font-family="sans-serif">Hg</text></svg>';
  const pixels = new Resvg(probe, { font: { loadSystemFonts: true } }).render().pixels;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}

const f6 = (v: number) => v.toFixed(6);
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
export function keptChanges(records: ExperimentRecord[]): { record: ExperimentRecord; previous: number | null; delta: number | null }[] {
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

/** summary.md: fixed `- key: value` lines first, so scripts can grep them, then the kept changes. */
export function summaryMarkdown(records: ExperimentRecord[], notes: string[] = []): string {
  const tag = tagOf(records);
  const count = (s: ExperimentStatus) => records.filter((r) => r.status === s).length;
  const baseline = records.find((r) => r.n === 0) ?? null;
  const baselineValue = baseline ? scoredValue(baseline) : null;
  const changes = keptChanges(records);
  const bestChange = changes.reduce<(typeof changes)[number] | null>((b, c) => (b === null || scoredValue(c.record)! < scoredValue(b.record)! ? c : b), null);
  const bestValue = bestChange ? scoredValue(bestChange.record)! : null;
  const training = records.reduce((sum, r) => sum + (r.trainingSeconds || 0), 0);
  const starts = records.map((r) => Date.parse(r.startedAt)).filter(Number.isFinite);
  const ends = records.map((r) => Date.parse(r.finishedAt)).filter(Number.isFinite);
  const wall = starts.length && ends.length ? Math.max(0, (Math.max(...ends) - Math.min(...starts)) / 1000) : 0;
  const overhead = wall - training;
  const tokens = records.reduce((sum, r) => sum + (r.tokens || 0), 0);

  const lines = [
    `# autoresearch report: ${tag}`,
    '',
    `- tag: ${tag}`,
    `- experiments: ${records.length} (keep: ${count('keep')}, discard: ${count('discard')}, crash: ${count('crash')})`,
    `- baseline val_bpb: ${baselineValue === null ? '-' : f6(baselineValue)}${baseline ? ` (${baseline.id})` : ''}`,
    `- best val_bpb: ${bestValue === null ? '-' : f6(bestValue)}${bestChange ? ` (${bestChange.record.id}, commit ${(bestChange.record.commit ?? NO_COMMIT).slice(0, 7)})` : ''}`,
    `- improvement: ${baselineValue === null || bestValue === null ? '-' : `${f6(baselineValue - bestValue)} (${pct(baselineValue - bestValue, baselineValue)} lower than the baseline)`}`,
    `- training seconds: ${sec(training)} (${human(training)}, summed over experiments)`,
    `- wall seconds: ${sec(wall)} (${human(wall)}, first start to last finish)`,
    overhead >= 0
      ? `- overhead seconds: ${sec(overhead)} (${human(overhead)}, ${pct(overhead, wall)} of wall time: proposing, committing, waiting for a slot, start-up and evaluation)`
      : `- overhead seconds: - (experiments trained in parallel: ${sec(training)} s of training in ${sec(wall)} s of wall time)`,
    `- tokens: ${tokens}`,
    `- chart: ${CHART_SVG} (also ${CHART_PNG})`,
    ...notes.map((n) => `- note: ${n}`),
    '',
    '## Kept changes',
    '',
    '| # | experiment | commit | val_bpb | delta vs previous best | description |',
    '|---|---|---|---|---|---|',
    ...changes.map(({ record, previous, delta }, i) => {
      const d = delta === null || previous === null ? 'baseline' : `${delta <= 0 ? '' : '+'}${f6(delta)} (${delta <= 0 ? '' : '+'}${pct(delta, previous)})`;
      return `| ${i + 1} | ${record.id} | ${(record.commit ?? NO_COMMIT).slice(0, 7)} | ${f6(scoredValue(record)!)} | ${d} | ${cell(record.description)} |`;
    }),
    '',
    '## Progress',
    '',
    `![val_bpb per experiment](${CHART_SVG})`,
    '',
  ];
  return lines.join('\n');
}

/** Writes report/progress.svg, report/progress.png and report/summary.md into the research repo. */
export async function writeReport(repo: string): Promise<{ svg: string; png: string; markdown: string }> {
  const root = resolve(repo);
  const records = await readRecords(root);
  if (records.length === 0) throw new UserError(`no experiments in ${join(root, RESULTS_JSONL)} yet: nothing to report`);
  const dir = join(root, REPORT_DIR);
  await mkdir(dir, { recursive: true });
  const paths = { svg: join(dir, CHART_SVG), png: join(dir, CHART_PNG), markdown: join(dir, SUMMARY_MD) };
  const svg = await chartSvg(chartData(records));
  await writeFile(paths.svg, svg);
  await writeFile(paths.png, svgToPng(svg));
  const notes = pngHasText() ? [] : [`no fonts were found on this machine, so ${CHART_PNG} has no text; ${CHART_SVG} has it all`];
  await writeFile(paths.markdown, summaryMarkdown(records, notes));
  return paths;
}
