// The report: a chart that shows what results.jsonl says, a PNG of it, and a summary whose figures
// are the records' own. Built from a hand-written results.jsonl, so every expected number is known.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resultsDir } from '../activities/results';
import { writeReport, type ReportPaths } from '../scripts/report';
import { ablationRows, ablationSpec } from '../scripts/report/ablation';
import { chartData, chartSvg, truncate } from '../scripts/report/progress';
import { renderSvg } from '../scripts/report/render';
import { summaryMarkdown } from '../scripts/report/summary';
import type { Ablation, ExperimentRecord, ExperimentStatus } from '../workflows/types';

const T0 = Date.parse('2025-11-27T22:00:00Z');
const LONG = 'WARMUP_STEPS 100 -> 50, and a description far too long to fit on the chart';
// [description, status, val_bpb, tokens, training seconds]
const ROWS: [string, ExperimentStatus, number | null, number, number][] = [
  ['baseline', 'keep', 1.2, 0, 300],
  ['LEARNING_RATE 0.003 -> 0.0015', 'keep', 1.15, 1200, 300],
  ['BETA1 0.9 -> 0.95', 'discard', 1.18, 900, 300],
  ['CUDA out of memory', 'crash', null, 800, 12],
  [LONG, 'keep', 1.1, 1000, 300],
  ['DEPTH 8 -> 16 (diverged)', 'discard', 3.5, 700, 300],
  ['WEIGHT_DECAY 0.1 -> 0.05', 'discard', 1.12, 600, 300],
  ['proposer failed: no edit', 'crash', null, 500, 0],
  ['BATCH_SIZE 32 -> 64', 'keep', 1.05, 1100, 300],
  ['EMBED 256 -> 512', 'discard', 1.06, 650, 300],
  ['HEADS 4 -> 8', 'crash', null, 700, 30],
  ['DROPOUT 0.1 -> 0.05', 'keep', 1.02, 750, 300],
];
const STEP_MS = 400_000; // one experiment every 400 s, each taking 360 s

const records: ExperimentRecord[] = ROWS.map(([description, status, valBpb, tokens, trainingSeconds], n) => ({
  id: `nov27-${n}`,
  n,
  parent: null,
  commit: description.startsWith('proposer failed') ? null : `${n.toString(16).padStart(2, '0')}c0ffee${'0'.repeat(32)}`,
  description,
  status,
  reason: status,
  valBpb,
  memoryGb: valBpb === null ? 0 : 1.5,
  metrics: (valBpb === null ? {} : { val_bpb: valBpb }) as Record<string, number>,
  proposer: n === 0 ? 'baseline' : 'sweep',
  tokens,
  startedAt: new Date(T0 + n * STEP_MS).toISOString(),
  finishedAt: new Date(T0 + n * STEP_MS + 360_000).toISOString(),
  trainingSeconds,
}));
const KEPT = ROWS.filter((r) => r[1] === 'keep');
const DISCARDED = ROWS.filter((r) => r[1] === 'discard');
const CRASHED = ROWS.filter((r) => r[1] === 'crash');
const TOKENS = ROWS.reduce((s, r) => s + r[3], 0);
const TRAINING = ROWS.reduce((s, r) => s + r[4], 0);
const WALL = ((ROWS.length - 1) * STEP_MS + 360_000) / 1000;

let repo: string;
let paths: ReportPaths;
let svg: string;
before(async () => {
  repo = await mkdtemp(join(tmpdir(), 'autoresearch-report-'));
  // Written in decision order, which is not experiment order when lanes run in parallel.
  const order = [...records.slice(0, 9), records[10], records[9], records[11]];
  await mkdir(resultsDir(repo, 'nov27'), { recursive: true });
  await writeFile(join(resultsDir(repo, 'nov27'), 'results.jsonl'), order.map((r) => JSON.stringify(r)).join('\n') + '\n');
  paths = await writeReport(repo, 'nov27', (line) => assert.fail(`no warning expected: ${line}`));
  svg = await readFile(paths.charts.progress!.svg, 'utf8');
});

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

/** The items of one named layer of the chart (`<g class="mark-… role-mark NAME_marks">…</g>`). */
function layer(name: string): string {
  const match = svg.match(new RegExp(`<g class="mark-\\w+ role-mark ${name}_marks"[^>]*>([\\s\\S]*?)</g>`));
  assert.ok(match, `layer ${name} in the SVG`);
  return match[1];
}

test("the files are written into the tag's results/<tag>/report/, with absolute paths", () => {
  assert.deepEqual(paths, {
    charts: {
      progress: {
        svg: join(repo, 'results', 'nov27', 'report', 'progress.svg'),
        png: join(repo, 'results', 'nov27', 'report', 'progress.png'),
      },
    },
    markdown: join(repo, 'results', 'nov27', 'report', 'summary.md'),
  });
});

test('chartData: every experiment by number, the unscored apart, the best as a step line', () => {
  const data = chartData(records);
  assert.equal(data.tag, 'nov27');
  assert.deepEqual(data.points.map((p) => p.n), ROWS.map((_, n) => n));
  assert.equal(data.kept.length, KEPT.length);
  assert.equal(data.discarded.length + data.diverged.length, DISCARDED.length);
  assert.deepEqual(data.unscored.map((p) => p.id), ['nov27-3', 'nov27-7', 'nov27-10']);
  assert.deepEqual(data.kept.map((p) => p.label), KEPT.map((r) => truncate(r[0])));
  assert.ok(truncate(LONG).length <= 40 && truncate(LONG).endsWith('…'));
  // across then down at every improvement, and on to the last experiment
  assert.deepEqual(data.best, [
    { n: 0, valBpb: 1.2 },
    { n: 1, valBpb: 1.2 }, { n: 1, valBpb: 1.15 },
    { n: 4, valBpb: 1.15 }, { n: 4, valBpb: 1.1 },
    { n: 8, valBpb: 1.1 }, { n: 8, valBpb: 1.05 },
    { n: 11, valBpb: 1.05 }, { n: 11, valBpb: 1.02 },
  ]);
  // the diverged 3.5 (above 1.2 + 10 × the 0.06 median absolute deviation) does not squash the chart
  assert.ok(Math.abs(data.threshold! - 1.8) < 1e-9, String(data.threshold));
  assert.deepEqual(data.diverged.map((p) => [p.id, p.valBpb, p.label]), [['nov27-5', 3.5, '3.5']]);
  assert.ok(data.yDomain![1] < 1.25 && data.yDomain![0] < 1.02, String(data.yDomain));
  assert.ok(data.points.filter((p) => p.n !== 5).every((p) => !p.diverged));
});

test('the SVG has one mark per experiment, by status, the kept descriptions as text and the best line', () => {
  assert.match(svg, /^<svg [^>]*width="\d+" height="\d+"/);
  assert.match(svg, /autoresearch nov27: 12 experiments, 5 kept/);
  assert.match(svg, /experiment #/);
  assert.match(svg, /val_bpb \(lower is better\)/);

  const marks = (group: string, status: string) => [...group.matchAll(new RegExp(`aria-label="nov27-(\\d+) ${status} val_bpb ([^"]+)"`, 'g'))];
  const kept = marks(layer('kept'), 'keep');
  const discarded = marks(layer('discarded'), 'discard');
  const crashed = marks(layer('crashed'), 'crash');
  const diverged = marks(layer('diverged'), 'discard');
  assert.deepEqual(kept.map((m) => Number(m[1])), [0, 1, 4, 8, 11]);
  assert.deepEqual(kept.map((m) => Number(m[2])), KEPT.map((r) => r[2]));
  assert.deepEqual(discarded.map((m) => Number(m[1])), [2, 6, 9]);
  assert.deepEqual(crashed.map((m) => m[2]), ['none', 'none', 'none']);
  assert.deepEqual(diverged.map((m) => [Number(m[1]), m[2]]), [[5, '3.5 (diverged)']]);
  assert.equal(kept.length + discarded.length + diverged.length, ROWS.length - CRASHED.length);
  // every mark of the chart is one of those: nothing drawn twice, nothing left out
  assert.equal((svg.match(/role="graphics-symbol" aria-roledescription="point"/g) ?? []).length, ROWS.length);

  // crashes sit on the x axis, below every scored point
  const ys = (group: string) => [...group.matchAll(/transform="translate\(([\d.]+),([\d.]+)\)"/g)].map((m) => Number(m[2]));
  assert.ok(Math.min(...ys(layer('crashed'))) > Math.max(...ys(layer('kept')), ...ys(layer('discarded'))));
  // diverged trainings sit on the top edge, above every scored point, their value written beside them
  assert.ok(Math.max(...ys(layer('diverged'))) < Math.min(...ys(layer('kept')), ...ys(layer('discarded'))));
  assert.deepEqual([...layer('divergedLabels').matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]), ['3.5']);

  const texts = [...layer('labels').matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]));
  assert.deepEqual(texts, KEPT.map((r) => truncate(r[0])));
  assert.ok(texts.includes('LEARNING_RATE 0.003 -> 0.0015'));

  const path = layer('best').match(/<path d="([^"]+)"/);
  assert.ok(path, 'the best line is a path');
  const vertices = path[1].match(/-?[\d.]+,-?[\d.]+/g) ?? [];
  assert.equal(vertices.length, chartData(records).best.length);
  assert.equal(vertices.length, 2 * KEPT.length - 1);
});

test('the PNG is a real PNG of the chart', async () => {
  const png = await readFile(paths.charts.progress!.png);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const svgWidth = Number(svg.match(/width="(\d+)"/)![1]);
  assert.ok(width >= svgWidth && width <= 4000, `width ${width}`);
  assert.ok(height >= 400 && height < width, `height ${height}`);
  assert.ok((await stat(paths.charts.progress!.png)).size > 20_000, 'a chart, not a blank');
});

test('the summary states the records own figures', async () => {
  const md = await readFile(paths.markdown, 'utf8');
  assert.equal(md.replace(/^- note: .*\n/gm, ''), summaryMarkdown(await readRecordsOf(repo))); // a note only where no fonts are found
  const line = (key: string) => md.match(new RegExp(`^- ${key}: (.*)$`, 'm'))?.[1];
  assert.equal(line('tag'), 'nov27');
  assert.equal(line('experiments'), `12 (keep: ${KEPT.length}, discard: ${DISCARDED.length}, crash: ${CRASHED.length})`);
  assert.equal(line('baseline val_bpb'), '1.200000 (nov27-0)');
  assert.equal(line('best val_bpb'), '1.020000 (nov27-11, commit 0bc0ffe)');
  assert.equal(line('improvement'), '0.180000 (15.00% lower than the baseline)');
  assert.equal(line('diverged'), '1 (val_bpb above 1.800000: nov27-5)');
  assert.match(md.split('## Diverged')[1], /^\| nov27-5 \| 05c0ffe \| 3\.5 \| discard \| DEPTH 8 -> 16 \(diverged\) \|$/m);
  assert.match(line('training seconds')!, new RegExp(`^${TRAINING.toFixed(1)} `));
  assert.match(line('wall seconds')!, new RegExp(`^${WALL.toFixed(1)} `));
  assert.match(line('overhead seconds')!, new RegExp(`^${(WALL - TRAINING).toFixed(1)} `));
  assert.equal(line('tokens'), String(TOKENS));
  assert.match(md, /^- chart: progress\.svg \(also progress\.png\)$/m);
  assert.match(md, /!\[[^\]]*\]\(progress\.svg\)/);

  const table = md.split('## Kept changes')[1].split('\n').filter((l) => /^\| \d+ \|/.test(l));
  assert.deepEqual(table.map((l) => l.split(' | ')[1]), ['nov27-0', 'nov27-1', 'nov27-4', 'nov27-8', 'nov27-11']);
  assert.deepEqual(table.map((l) => l.split(' | ')[4]), ['baseline', '-0.050000 (-4.17%)', '-0.050000 (-4.35%)', '-0.050000 (-4.55%)', '-0.030000 (-2.86%)']);
  assert.ok(table[2].includes(LONG), 'the summary keeps the whole description');
});

test('an empty results.jsonl is a clear error, and a summary of parallel lanes does not go negative', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'autoresearch-report-'));
  await assert.rejects(writeReport(empty, 'nov27'), { name: 'UserError', message: /no experiments in .*results\/nov27\/results\.jsonl yet/ });
  const parallel = records.slice(0, 3).map((r) => ({ ...r, startedAt: new Date(T0).toISOString(), finishedAt: new Date(T0 + 400_000).toISOString() }));
  assert.match(summaryMarkdown(parallel), /^- overhead seconds: - \(experiments trained in parallel: 900\.0 s of training in 400\.0 s of wall time\)$/m);
});

async function readRecordsOf(dir: string): Promise<ExperimentRecord[]> {
  return (await readFile(join(resultsDir(dir, 'nov27'), 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
}

test('near-misses are listed: a line with their ids, and a table with their runs and why they were not kept', () => {
  const runs = [0.99, 0.995].map((valBpb, i) => ({ seed: i, valBpb, seconds: 300, worker: 'w', metrics: { val_bpb: valBpb } }));
  const miss = { ...records[2], valBpb: 0.9925, runs, nearMiss: true, reason: 'near-miss: gain 0.0075 over 4 runs, undecided after 4 runs' };
  const md = summaryMarkdown([...records.slice(0, 2), miss, ...records.slice(3)]);
  assert.match(md, /^- near-misses: 1 \(nov27-2\)$/m);
  assert.match(md.split('## Near-misses')[1], /^\| nov27-2 \| \w+ \| 0\.992500 \| 2 \| .* \| near-miss: gain 0\.0075 over 4 runs, undecided after 4 runs \|$/m);
  assert.match(summaryMarkdown(records), /^- near-misses: 0$/m);
  assert.ok(!summaryMarkdown(records).includes('## Near-misses'));
});

test('a crash for an implausible score or a tampered harness is flagged as suspect in the summary', () => {
  const gamed = { ...records[3], status: 'crash' as const, valBpb: null, reason: "implausible score: val_bpb 0.000000 is below this target's floor of 0.5 (autoresearch.json \"floor\")" };
  const fifo = { ...records[4], status: 'crash' as const, valBpb: null, reason: 'tampered harness: prepare.py is a FIFO' };
  const md = summaryMarkdown([...records.slice(0, 3), gamed, fifo, ...records.slice(5)]);
  assert.match(md, /^- suspect: 2 crash\(es\) for an implausible score or a tampered harness \(nov27-3, nov27-4\): a candidate may be gaming the scorer; read their diffs$/m);
  assert.ok(!summaryMarkdown(records).includes('- suspect:'), 'no line on a night without them');
});

interface Box { x0: number; y0: number; x1: number; y1: number; what: string }

/**
 * Every point mark (`<g class="mark-symbol role-mark …">`) and every legend's background box of a rendered
 * chart, in the SVG's own coordinates: each element's position is the sum of its parents' translates.
 */
function pointsAndLegends(chart: string): { points: Box[]; legends: Box[] } {
  const points: Box[] = [];
  const legends: Box[] = [];
  const groups: { x: number; y: number; cls: string }[] = [{ x: 0, y: 0, cls: '' }];
  const translate = (attrs: string) =>
    attrs.match(/transform="translate\(([-\d.e]+),([-\d.e]+)\)/)?.slice(1).map(Number) ?? [0, 0];
  for (const [, close, tag, attrs] of chart.matchAll(/<(\/?)(\w+)([^>]*)>/g)) {
    if (close) {
      if (tag === 'g') groups.pop();
      continue;
    }
    if (tag !== 'g' && tag !== 'path') continue;
    const parent = groups.at(-1)!;
    const [dx, dy] = translate(attrs);
    const [x, y] = [parent.x + dx, parent.y + dy];
    if (tag === 'g') {
      if (!attrs.endsWith('/')) groups.push({ x, y, cls: attrs.match(/class="([^"]*)"/)?.[1] ?? '' });
    } else if (/\brole-mark\b/.test(parent.cls) && parent.cls.startsWith('mark-symbol')) {
      // the symbol's extent: the largest coordinate of its outline, around its centre
      const r = Math.max(...(attrs.match(/ d="([^"]*)"/)![1].match(/[\d.]+/g) ?? ['0']).map(Number));
      const what = attrs.match(/aria-label="([^"]*)"/)?.[1] ?? parent.cls;
      points.push({ x0: x - r, y0: y - r, x1: x + r, y1: y + r, what });
    } else if (attrs.includes('class="background"') && /\brole-legend$/.test(groups.at(-2)?.cls ?? '')) {
      const [w, h] = attrs.match(/ d="M0,0h([\d.]+)v([\d.]+)/)!.slice(1).map(Number);
      legends.push({ x0: x, y0: y, x1: x + w, y1: y + h, what: 'legend' });
    }
  }
  return { points, legends };
}

const overlaps = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

function assertNoLegendCovers(chart: string, pointCount: number): Box[] {
  const { points, legends } = pointsAndLegends(chart);
  assert.equal(points.length, pointCount, 'every point mark found');
  assert.ok(legends.length > 0, 'a legend found');
  for (const legend of legends) {
    for (const p of points) assert.ok(!overlaps(p, legend), `${p.what} under the legend ${JSON.stringify(legend)}`);
  }
  return points;
}

test("no legend covers a point of the progress chart, not even the last experiment's at the top right", async () => {
  // The night of issue 23: the last experiment scored worst (2.4617 among ~2.1), at the top right where the
  // legends used to sit; a confirmed keep beside it adds the ring's legend, its runs dots of their own.
  const runs = (...values: number[]) =>
    values.map((valBpb, seed) => ({ seed, valBpb, seconds: 300, worker: 'w', metrics: {} }));
  const night: ExperimentRecord[] = [
    { ...records[0], valBpb: 2.1 },
    { ...records[1], valBpb: 2.08 },
    { ...records[2], valBpb: 2.09 },
    records[3],
    { ...records[4], valBpb: 2.07 },
    { ...records[6], n: 5, id: 'nov27-5', valBpb: 2.11 },
    { ...records[8], n: 6, id: 'nov27-6', valBpb: 2.45, runs: runs(2.449, 2.451), confirmed: true },
    { ...records[9], n: 7, id: 'nov27-7', valBpb: 2.4617 },
  ];
  const points = assertNoLegendCovers(await chartSvg(chartData(night)), night.length + 3); // and the ring and 2 runs
  const centre = (b: Box) => [(b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2];
  const [lastX, lastY] = centre(points.find((p) => p.what.startsWith('nov27-7 '))!);
  const topRight = points.every((p) => centre(p)[0] <= lastX && centre(p)[1] >= lastY);
  assert.ok(topRight, 'the last experiment is the top right point');
});

test("no legend covers a point of the ablation chart, not even the top row's largest contribution", async () => {
  const interval = (mean: number, half: number) => ({ mean, low: mean - half, high: mean + half, n: 3 });
  const change = (n: number, mean: number) => ({
    name: `without nov27-${n}: ${records[n].description}`, change: `nov27-${n}`, commit: records[n].commit!,
    contribution: interval(mean, 0.01),
  });
  const ablation: Ablation = {
    tag: 'nov27',
    best: { ...interval(1.02, 0.005), commit: records[11].commit! },
    changes: [change(1, 0.05), change(4, 0.01), change(8, -0.02), change(11, 0.03)],
  };
  const rows = ablationRows(ablation, records);
  assertNoLegendCovers(await renderSvg(ablationSpec(rows, ablation)), rows.length);
});
