// The report of a night with a noise floor and the morning's answers: σ and the confirmed keeps from
// results.jsonl, the verdict from verdict.json, the ablation from ablation.json. The files are written
// as the workflow writes them: each experiment judged by judgeRuns and recorded by appendRecord, σ pooled
// by withGroup, the answers computed by the morning's statistics and written by writeMorning.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeMorning } from '../activities/morning';
import { appendRecord, readRecords, resultsDir } from '../activities/results';
import { writeReport, type ReportPaths } from '../scripts/report';
import { ablationRows } from '../scripts/report/ablation';
import { summaryMarkdown } from '../scripts/report/summary';
import { judgeRuns, NO_NOISE, sigmaOf, withGroup, type Judgement, type Noise } from '../workflows/decide';
import { verdictLine } from '../workflows/morning';
import { difference, estimate } from '../workflows/stats';
import type { Ablation, Best, ExperimentRecord, Interval, RunConfig, TrainingResult, Verdict } from '../workflows/types';
import { cli, makeRepo } from './helpers';

const TAG = 'dawn';
const T0 = Date.parse('2025-11-28T22:00:00Z');
// [description, the val_bpb of each training in the order they ran (null: it crashed)]
const NIGHT: [string, (number | null)[]][] = [
  ['baseline', [1.201, 1.199, 1.2]],
  ['LEARNING_RATE 0.003 -> 0.0015', [1.15]], // a clear win: one run
  ['BETA1 0.9 -> 0.95', [1.149, 1.1506]], // a near-tie, trained again, within the noise
  ['WARMUP_STEPS 100 -> 50', [1.146, 1.1452]], // a near-tie, confirmed
  ['HEADS 4 -> 8', [null]],
  ['BATCH_SIZE 32 -> 64', [1.142, 1.141]], // a near-tie, confirmed
  ['EMBED 256 -> 512', [1.16]], // a clear loss: one run
];
const commitOf = (n: number) => `${n.toString(16).padStart(2, '0')}ab${'c'.repeat(36)}`;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function result(valBpb: number | null): TrainingResult {
  return {
    exitCode: valBpb === null ? 1 : 0, timedOut: false, metrics: valBpb === null ? {} : { val_bpb: valBpb }, seconds: 100,
    logTail: '', worker: 'gpu-a', sandboxed: true,
  };
}

/** The night as the study decides and records it: a near-tie gets its second run only when judgeRuns asks. */
async function recordNight(repo: string): Promise<ExperimentRecord[]> {
  let noise: Noise = NO_NOISE;
  let best: Best | null = null;
  for (const [n, [description, scores]] of NIGHT.entries()) {
    const id = `${TAG}-${n}`;
    let results = (n === 0 ? scores : scores.slice(0, 1)).map(result);
    let outcome: Judgement = judgeRuns(results, best, 0, noise);
    if (outcome.status === 'confirm') {
      results = scores.map(result);
      outcome = judgeRuns(results, best, 0, noise);
    }
    if (outcome.status === 'confirm') assert.fail(`${id} asked for a third run: ${outcome.reason}`);
    assert.equal(results.length, scores.length, `${id} trained as often as the fixture says: ${outcome.reason}`);
    if (outcome.status !== 'crash') noise = withGroup(noise, results.map((r) => r.metrics.val_bpb));
    if (outcome.status === 'keep') best = { experimentId: id, commit: commitOf(n), valBpb: outcome.valBpb! };
    await appendRecord(repo, TAG, {
      id, n, parent: n === 0 ? null : commitOf(0), commit: commitOf(n), description, status: outcome.status,
      reason: outcome.reason, valBpb: outcome.valBpb, memoryGb: 1.5,
      metrics: outcome.valBpb === null ? {} : { val_bpb: outcome.valBpb },
      proposer: n === 0 ? 'baseline' : 'llm', tokens: n === 0 ? 0 : 1000, seed: n * 16,
      runs: results.map((r, i) => ({
        seed: n * 16 + i, valBpb: r.metrics.val_bpb ?? null, seconds: r.seconds, worker: r.worker, metrics: r.metrics,
      })),
      confirmed: outcome.status === 'keep' && n > 0 && results.length > 1 ? true : undefined,
      sigma: sigmaOf(noise) ?? undefined,
      startedAt: new Date(T0 + n * 400_000).toISOString(), finishedAt: new Date(T0 + n * 400_000 + 360_000).toISOString(),
      trainingSeconds: 100 * results.length,
    });
  }
  return readRecords(repo, TAG);
}

function interval(scores: number[]): Interval {
  const e = estimate(scores);
  return { mean: e.mean, low: e.mean - e.halfWidth, high: e.mean + e.halfWidth, n: e.n };
}

const BASELINE_AGAIN = [1.2003, 1.1995, 1.201];
const BEST_AGAIN = [1.1418, 1.1402, 1.1425];
// The best trained again without each kept change; the last one no longer comes out of the branch cleanly.
const WITHOUT: Record<string, number[]> = { [`${TAG}-1`]: [1.192, 1.1905, 1.193], [`${TAG}-3`]: [1.1425, 1.1398, 1.144] };
const PROBLEM = 'no longer reverts cleanly in train.py: later keeps built on it';

function verdictOf(baseline: number[], best: number[]): Verdict {
  const gain = difference(baseline, best);
  const verdict: Verdict = {
    tag: TAG, baseline: { ...interval(baseline), commit: commitOf(0) }, best: { ...interval(best), commit: commitOf(5) },
    gain: { mean: gain.mean, low: gain.low, high: gain.high, n: gain.n }, line: '', crashes: 0,
  };
  return { ...verdict, line: verdictLine(verdict) };
}

function ablationOf(records: ExperimentRecord[]): Ablation {
  const kept = records.filter((r) => r.status === 'keep' && r.n > 0);
  return {
    tag: TAG,
    best: { ...interval(BEST_AGAIN), commit: commitOf(5) },
    changes: kept.map((r) => {
      const base = { name: `without ${r.id}: ${r.description}`, change: r.id, commit: r.commit! };
      if (!WITHOUT[r.id]) return { ...base, contribution: null, problem: PROBLEM };
      const d = difference(BEST_AGAIN, WITHOUT[r.id]);
      return { ...base, contribution: { mean: d.mean, low: d.low, high: d.high, n: d.n } };
    }).reverse(), // keep order is the report's to restore
  };
}

const repos: string[] = [];
async function newRepo(): Promise<string> {
  repos.push(await makeRepo({ 'train.py': 'LEARNING_RATE = 0.003\n' }));
  return repos.at(-1)!;
}
after(() => Promise.all(repos.map((r) => rm(r, { recursive: true, force: true }))));

let repo: string;
let records: ExperimentRecord[];
let verdict: Verdict;
let ablation: Ablation;
let paths: ReportPaths;
let md: string;
let svg: string;
let ablationSvg: string;
before(async () => {
  repo = await newRepo();
  records = await recordNight(repo);
  const config = { tag: TAG, repo } as RunConfig; // writeMorning reads only where the run's results live
  verdict = verdictOf(BASELINE_AGAIN, BEST_AGAIN);
  ablation = ablationOf(records);
  await writeMorning(config, 'verdict.json', verdict);
  await writeMorning(config, 'ablation.json', ablation);
  paths = await writeReport(repo, TAG, (line) => assert.fail(`no warning expected: ${line}`));
  const files = [paths.markdown, paths.charts.progress!.svg, paths.charts.ablation!.svg];
  [md, svg, ablationSvg] = await Promise.all(files.map((p) => readFile(p, 'utf8')));
});

const line = (key: string) => md.match(new RegExp(`^- ${key}: (.*)$`, 'm'))?.[1];
const ENTITIES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&amp;': '&' };
const unescape = (s: string) => s.replace(/&(lt|gt|quot|#39|amp);/g, (e) => ENTITIES[e]);

test('the fixture night is what the study would have recorded: two confirmed keeps, one near-tie not confirmed', () => {
  assert.deepEqual(records.map((r) => r.status), ['keep', 'keep', 'discard', 'keep', 'crash', 'keep', 'discard']);
  assert.deepEqual(records.map((r) => r.confirmed ?? false), [false, false, false, true, false, true, false]);
  assert.match(records[2].reason, /within the noise/);
});

test('the summary states σ from the last record and the trainings it pools', () => {
  const sigma = records.at(-1)!.sigma!;
  // σ pools the baseline's three runs and the three experiments trained twice; crashes and single runs add nothing
  const expected = Math.sqrt(
    [NIGHT[0][1], NIGHT[2][1], NIGHT[3][1], NIGHT[5][1]]
      .map((xs) => (xs as number[]).reduce((s, x) => s + (x - mean(xs as number[])) ** 2, 0))
      .reduce((a, b) => a + b, 0) / (2 + 1 + 1 + 1),
  );
  assert.ok(Math.abs(sigma - expected) < 1e-12, `${sigma} vs ${expected}`);
  assert.equal(line('noise'), `σ = ${sigma.toFixed(6)} val_bpb between runs of one commit (from 9 trainings)`);
  assert.equal(line('confirmation runs'),
    `3 candidates trained again: 2 kept after confirmation (${TAG}-3, ${TAG}-5), 1 not confirmed (${TAG}-2)`);
});

test('the kept changes mark the confirmed keeps with their runs, and the baseline as a mean', () => {
  const table = md.split('## Kept changes')[1].split('\n').filter((l) => /^\| \d+ \|/.test(l));
  const values = table.map((l) => l.split(' | ')[3]);
  assert.deepEqual(values, [
    `${mean([1.201, 1.199, 1.2]).toFixed(6)} (mean of 3 runs)`,
    '1.150000',
    `${mean([1.146, 1.1452]).toFixed(6)} (confirmed, 2 runs)`,
    `${mean([1.142, 1.141]).toFixed(6)} (confirmed, 2 runs)`,
  ]);
});

test('the summary leads with the verdict and says its interval excludes zero', () => {
  const [title, , lead, , sentence] = md.split('\n');
  assert.equal(title, `# autoresearch report: ${TAG}`);
  assert.equal(lead, `verdict: ${verdict.line}`);
  assert.match(lead, /^verdict: baseline 1\.2003 ± 0\.\d{4} → best 1\.1415 ± 0\.\d{4} \(n=3\): −0\.0588 \[−0\.\d{4}, −0\.\d{4}\]$/);
  assert.ok(verdict.gain.high < 0);
  assert.equal(sentence, 'The 95% interval of the gain excludes zero: the best really beats the baseline '
    + '(3 runs of the baseline and 3 of the best, on fresh seeds).');
});

test('a verdict inside the noise, or about an older best, says so', () => {
  const tie = verdictOf(BASELINE_AGAIN, [1.2011, 1.1992, 1.2001]);
  assert.ok(tie.gain.low < 0 && tie.gain.high > 0, tie.line);
  assert.match(summaryMarkdown(records, [], { verdict: tie }),
    /^The 95% interval of the gain includes zero: the night's gain cannot be told from noise/m);
  const older = { ...verdict, best: { ...verdict.best, commit: commitOf(3) }, crashes: 1 };
  assert.match(summaryMarkdown(records, [], { verdict: older }),
    new RegExp('really beats the baseline \\(.*\\)\\. 1 of the verifying trainings crashed and are left out\\. '
      + "Its best, 03abccc, is no longer the night's best \\(05abccc\\)"));
});

test('the ablation table lists the kept changes in keep order: contribution ± half-width, interval, or the problem', () => {
  const section = md.split('## Ablation')[1].split('\n## ')[0];
  const rows = section.split('\n').filter((l) => l.startsWith(`| ${TAG}-`)).map((l) => l.slice(2, -2).split(' | '));
  assert.deepEqual(rows.map((r) => r[0]), [`${TAG}-1`, `${TAG}-3`, `${TAG}-5`]);
  const fmt = (x: number) => `${x > 0 ? '+' : ''}${x.toFixed(6)}`;
  for (const [i, id] of [`${TAG}-1`, `${TAG}-3`].entries()) {
    const d = difference(BEST_AGAIN, WITHOUT[id]);
    assert.equal(rows[i][1], `${fmt(d.mean)} ± ${d.halfWidth.toFixed(6)}`);
    assert.equal(rows[i][2], `[${fmt(d.low)}, ${fmt(d.high)}]`);
    assert.equal(rows[i][3], '3');
  }
  assert.equal(rows[0][4], 'helped', 'taking the learning rate out costs 0.05: it clearly helped');
  assert.equal(rows[1][4], 'unclear', 'the warm-up is worth less than the noise');
  assert.deepEqual(rows[2].slice(1, 5), ['-', '-', '-', PROBLEM]);
  assert.deepEqual(rows.map((r) => r[5]), [NIGHT[1][0], NIGHT[3][0], NIGHT[5][0]]);
  assert.equal(line('ablation'),
    '3 kept changes (1 helped, 0 hurt, 1 unclear, 1 not measured); chart: ablation.svg (also ablation.png)');
  assert.match(section, /^!\[[^\]]*\]\(ablation\.svg\)$/m);
});

test('the progress chart rings the confirmed keeps, with a legend entry, and draws each run of a repeated experiment', () => {
  const rings = [...svg.matchAll(/aria-label="(dawn-\d+) kept after confirmation, mean of (\d) runs"/g)];
  assert.deepEqual(rings.map((m) => [m[1], m[2]]), [[`${TAG}-3`, '2'], [`${TAG}-5`, '2']]);
  assert.match(svg, /<text[^>]*>kept after confirmation<\/text>/, 'the legend names the ring');
  const runs = [...svg.matchAll(/aria-label="(dawn-\d+) run (\d) of (\d), seed \d+: val_bpb ([\d.]+)"/g)];
  assert.deepEqual(runs.map((m) => [m[1], Number(m[4])]), [
    [`${TAG}-0`, 1.201], [`${TAG}-0`, 1.199], [`${TAG}-0`, 1.2], [`${TAG}-2`, 1.149], [`${TAG}-2`, 1.1506],
    [`${TAG}-3`, 1.146], [`${TAG}-3`, 1.1452], [`${TAG}-5`, 1.142], [`${TAG}-5`, 1.141],
  ]);
  assert.match(svg, new RegExp(`noise σ ${records.at(-1)!.sigma!.toFixed(6)}`));
});

test('ablation.svg and .png are written beside the progress chart, naming each change with its contribution', async () => {
  const dir = join(resultsDir(repo, TAG), 'report');
  assert.deepEqual(paths, {
    charts: {
      progress: { svg: join(dir, 'progress.svg'), png: join(dir, 'progress.png') },
      ablation: { svg: join(dir, 'ablation.svg'), png: join(dir, 'ablation.png') },
    },
    markdown: join(dir, 'summary.md'),
  });
  assert.match(ablationSvg, /^<svg [^>]*width="\d+" height="\d+"/);
  assert.match(ablationSvg, /autoresearch dawn: what each kept change is worth/);
  const labels = [...ablationSvg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]));
  for (const r of ablationRows(ablation, records)) assert.ok(labels.includes(r.label), `${r.label} on the chart`);
  assert.ok(labels.includes(`not measured: ${PROBLEM}`));
  const points = [...ablationSvg.matchAll(/aria-label="(dawn-\d+) contribution [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\]: (\w+)"/g)];
  assert.deepEqual(points.map((m) => [m[1], m[2]]), [[`${TAG}-1`, 'helped'], [`${TAG}-3`, 'unclear']]);
  // positive is to the right: the change that helped sits right of the one inside the noise
  const xs = [...ablationSvg.matchAll(/role-mark contributions_marks[\s\S]*?<\/g>/g)][0][0]
    .match(/translate\(([\d.]+),/g)!.map((t) => Number(t.slice(10, -1)));
  assert.ok(xs[0] > xs[1], String(xs));
  const png = await readFile(paths.charts.ablation!.png);
  assert.equal(png.subarray(1, 4).toString('ascii'), 'PNG');
  assert.ok((await stat(paths.charts.ablation!.png)).size > 10_000, 'a chart, not a blank');
});

test('`report TAG --repo` prints every file it wrote, the ablation chart included', async () => {
  const out = await cli(['report', TAG, '--repo', repo], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  assert.equal(out.code, 0, out.stderr);
  const dir = join(resultsDir(repo, TAG), 'report');
  assert.equal(out.stdout, [
    `chart:   ${join(dir, 'progress.svg')}`, `         ${join(dir, 'progress.png')}`,
    `         ${join(dir, 'ablation.svg')}`, `         ${join(dir, 'ablation.png')}`,
    `summary: ${join(dir, 'summary.md')}`, '',
  ].join('\n'));
});

test('a night without repeats says σ was not measured; a damaged verdict.json is one warning, no verdict', async () => {
  const single = records.map((r) => ({ ...r, runs: r.runs!.slice(0, 1), sigma: undefined, confirmed: undefined }));
  assert.match(summaryMarkdown(single), /^- noise: not measured \(no commit was trained twice: --baseline-runs 1\)$/m);
  assert.match(summaryMarkdown(single), /^- confirmation runs: 0 candidates trained again: 0 kept after confirmation, 0 not confirmed$/m);
  const old = records.map(({ runs, sigma, confirmed, ...r }) => r); // written before runs were recorded
  assert.doesNotMatch(summaryMarkdown(old), /^- (noise|confirmation runs):/m);

  const other = await newRepo();
  for (const r of records) await appendRecord(other, TAG, r);
  await writeFile(join(resultsDir(other, TAG), 'verdict.json'), '{"tag": "dawn", "baseline": {');
  const warnings: string[] = [];
  const written = await writeReport(other, TAG, (w) => warnings.push(w));
  const damaged = join(resultsDir(other, TAG), 'verdict.json');
  assert.deepEqual(warnings, [`warning: ${damaged} skipped: not what \`verify\`, \`ablate\`, \`sensitivity\` or \`compare\` writes`]);
  const summary = await readFile(written.markdown, 'utf8');
  assert.doesNotMatch(summary, /^verdict:/m);
  assert.equal(written.charts.ablation, undefined, 'no ablation asked, no ablation chart');
  assert.match(summary, /^- noise: σ = /m);
});
