// A diverged training is an ordinary night's outcome: its row reads like the original's, the original's
// analysis reads the file, and the chart keeps its scale with the diverged marked on its top edge.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendRecord, divergedThreshold, readRecords, resultsDir, shortScore } from '../activities/results';
import { parseSummary } from '../gpu-worker/summary';
import { chartData, chartSvg } from '../scripts/report/progress';
import { summaryMarkdown } from '../scripts/report/summary';
import type { ExperimentRecord, ExperimentStatus } from '../workflows/types';
import { gitIn } from './helpers';

const TAG = 'diverge';
// [what the training printed as val_bpb (null: it crashed), status, description]
const NIGHT: [string | null, ExperimentStatus, string][] = [
  ['2.400000', 'keep', 'baseline'],
  ['2.350000', 'keep', 'LEARNING_RATE 0.006 -> 0.009'],
  ['2.2e33', 'discard', 'BETA2 0.99 -> 0.495'],
  ['2.380000', 'discard', 'DEPTH 4 -> 6'],
  ['1e300', 'discard', 'LEARNING_RATE 0.009 -> 0.9'],
  ['0.000001', 'keep', 'WARMUP 10 -> 0'],
  ['2.360000', 'discard', 'BATCH 32 -> 64'],
  [null, 'crash', 'HEADS 4 -> 5'],
];

/** What a training prints at its end, in the original's summary format. */
function trainingOutput(valBpb: string): string {
  const summary = ['---', `val_bpb:          ${valBpb}`, 'training_seconds: 20.0', 'peak_vram_mb:     1536.0'];
  return ['step 00200 (100.0%) | loss: 3.100000', ...summary, ''].join('\n');
}

/** The records as the workflow builds them from the parsed summary. */
function night(): ExperimentRecord[] {
  return NIGHT.map(([printed, status, description], n) => {
    const metrics = printed === null ? {} : parseSummary(trainingOutput(printed)).metrics;
    return {
      id: `${TAG}-${n}`,
      n,
      parent: null,
      commit: `${n}abcdef${'0'.repeat(32)}`,
      description,
      status,
      reason: status,
      valBpb: metrics.val_bpb ?? null,
      memoryGb: (metrics.peak_vram_mb ?? 0) / 1024,
      metrics,
      proposer: n === 0 ? 'baseline' : 'sweep',
      tokens: 0,
      startedAt: new Date(Date.UTC(2026, 10, 27, 22, n)).toISOString(),
      finishedAt: new Date(Date.UTC(2026, 10, 27, 22, n, 30)).toISOString(),
      trainingSeconds: 20,
    };
  });
}

const python = (script: string, ...args: string[]) =>
  execFileSync('python3', ['-c', script, ...args], { encoding: 'utf8' });

// Reads results.tsv the way the original's analysis.ipynb does: pandas.read_csv(sep='\t') where pandas is
// installed, else the csv module with float() on val_bpb; prints the columns the analysis uses.
const ANALYSIS = `
import json, sys
path = sys.argv[1]
try:
    import pandas as pd
    df = pd.read_csv(path, sep="\\t")
    reader, val_bpb, status = "pandas", [float(v) for v in df["val_bpb"]], list(df["status"])
    memory = [float(v) for v in df["memory_gb"]]
except ImportError:
    import csv
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\\t"))
    reader, val_bpb, status = "csv", [float(r["val_bpb"]) for r in rows], [r["status"] for r in rows]
    memory = [float(r["memory_gb"]) for r in rows]
kept = [v for v, s in zip(val_bpb, status) if s == "keep"]
values = [repr(v) for v in val_bpb]
print(json.dumps({"reader": reader, "val_bpb": values, "memory_gb": memory, "status": status, "best": min(kept)}))
`;

describe('a diverged training', () => {
  test("each val_bpb is written in '%.6f' form exactly as Python writes it, huge or tiny", async (t) => {
    const repo = mkdtempSync(join(tmpdir(), 'autoresearch-diverged-'));
    t.after(() => rmSync(repo, { recursive: true, force: true }));
    gitIn(repo, 'init', '--quiet');
    for (const r of night()) await appendRecord(repo, TAG, r);

    const tsvPath = join(resultsDir(repo, TAG), 'results.tsv');
    const rows = readFileSync(tsvPath, 'utf8').trimEnd().split('\n').slice(1).map((l) => l.split('\t'));
    const printed = NIGHT.map(([v]) => v ?? '0');
    const expected = python('import sys\nfor x in sys.argv[1:]: print("%.6f" % float(x))', ...printed)
      .trimEnd()
      .split('\n');
    assert.deepEqual(rows.map((r) => r[1]), expected);
    assert.equal(rows[2][1], '2199999999999999937911583401836544.000000', '2.2e33 in fixed notation, no exponent');
    assert.equal(rows[4][1].length, 301 + 7, '1e300: 301 digits, a point and six decimals');
    assert.equal(rows[5][1], '0.000001');
    assert.deepEqual(rows.map((r) => r[2]), NIGHT.map(([v]) => (v === null ? '0.0' : '1.5')), "memory_gb as '%.1f'");
    const kept = (await readRecords(repo, TAG)).map((r) => r.valBpb);
    assert.deepEqual(kept, night().map((r) => r.valBpb), 'the jsonl keeps the exact values');

    const analysis = JSON.parse(python(ANALYSIS, tsvPath));
    const values = analysis.val_bpb.map(Number);
    night().forEach((r, i) => {
      const want = r.valBpb ?? 0;
      const same = want === 0 ? values[i] === 0 : Math.abs(values[i] / want - 1) < 1e-12;
      assert.ok(same, `${analysis.reader} read row ${i} as ${values[i]}, not ${want}`);
    });
    assert.deepEqual(analysis.status, NIGHT.map(([, s]) => s));
    assert.equal(analysis.best, 0.000001);
  });

  test('the threshold is the baseline plus the widest margin, and the outliers it judges do not move it', () => {
    const records = night();
    // baseline 2.4 + max(0.1, 2.4 / 2, 10 × 0.03 median absolute deviation) = 3.6
    assert.ok(Math.abs(divergedThreshold(records)! - 3.6) < 1e-12, String(divergedThreshold(records)));
    const wilder = records.map((r) => (r.valBpb !== null && r.valBpb > 1e30 ? { ...r, valBpb: r.valBpb * 1e8 } : r));
    assert.equal(divergedThreshold(wilder), divergedThreshold(records));
    const noisy = [1, 3, 2.5, 4, 1.5, 3.5].map((v, n) => ({ ...records[0], n, valBpb: v }));
    // median 2.75, deviations 1.75 .25 .25 1.25 1.25 .75: MAD 1, so 1 + 10 × 1
    assert.equal(divergedThreshold(noisy), 11);
    assert.equal(divergedThreshold(records.filter((r) => r.valBpb === null)), null, 'nothing scored: no threshold');
    assert.deepEqual([2.2e33, 1e300, 3.5, 0.000001].map(shortScore), ['2.2e33', '1e300', '3.5', '0.000001']);
  });

  test("the chart's y range stays within the normal points plus a margin, the diverged marked on the top edge", async () => {
    const records = night();
    const data = chartData(records);
    assert.deepEqual(data.diverged.map((p) => [p.id, p.label]), [[`${TAG}-2`, '2.2e33'], [`${TAG}-4`, '1e300']]);
    const normal = data.scored.map((p) => p.valBpb!);
    const [lo, hi] = [Math.min(...normal), Math.max(...normal)];
    const margin = (hi - lo) * 0.1;
    assert.ok(data.yDomain![0] >= lo - margin && data.yDomain![0] < lo, `${data.yDomain} against ${lo}..${hi}`);
    assert.ok(data.yDomain![1] <= hi + margin && data.yDomain![1] > hi, `${data.yDomain} against ${lo}..${hi}`);
    // Without the suspiciously low 0.000001, the range hugs the ordinary scores.
    const ordinary = chartData(records.filter((r) => r.n !== 5));
    assert.ok(ordinary.yDomain![0] > 2.3 && ordinary.yDomain![1] < 2.45, String(ordinary.yDomain));

    const svg = await chartSvg(data);
    const layer = (name: string) =>
      svg.match(new RegExp(`<g class="mark-\\w+ role-mark ${name}_marks"[^>]*>([\\s\\S]*?)</g>`))![1];
    const ys = (name: string) =>
      [...layer(name).matchAll(/transform="translate\(([\d.]+),([\d.]+)\)"/g)].map((m) => Number(m[2]));
    assert.equal(ys('diverged').length, 2);
    assert.ok(Math.max(...ys('diverged')) < Math.min(...ys('kept'), ...ys('discarded')), 'above every other point');
    assert.ok(Math.max(...ys('diverged')) <= 10, 'on the top edge');
    assert.deepEqual([...layer('diverged').matchAll(/aria-label="([^"]+)"/g)].map((m) => m[1]), [
      `${TAG}-2 discard val_bpb 2.2e33 (diverged)`,
      `${TAG}-4 discard val_bpb 1e300 (diverged)`,
    ]);
    const labels = [...layer('divergedLabels').matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    assert.deepEqual(labels, ['2.2e33', '1e300']);
    assert.match(svg, /triangles on the top edge: diverged \(val_bpb above 3\.6\)/);
  });

  test('the summary names the diverged trainings', () => {
    const md = summaryMarkdown(night());
    assert.match(md, /^- diverged: 2 \(val_bpb above 3\.600000: diverge-2, diverge-4\)$/m);
    const section = md.split('## Diverged')[1].split('## Progress')[0];
    assert.match(section, /^\| diverge-2 \| 2abcdef \| 2\.2e33 \| discard \| BETA2 0\.99 -> 0\.495 \|$/m);
    assert.match(section, /^\| diverge-4 \| 4abcdef \| 1e300 \| discard \| LEARNING_RATE 0\.009 -> 0\.9 \|$/m);
    assert.match(md, /^- best val_bpb: 0\.000001 \(diverge-5, commit 5abcdef\)$/m);
    assert.match(summaryMarkdown(night().filter((r) => r.n !== 2 && r.n !== 4)), /^- diverged: 0$/m);
  });
});
