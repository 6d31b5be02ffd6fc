// summary.md: the verdict where `verify` has answered, fixed `- key: value` lines scripts can grep, then the
// kept changes, the tables of `ablate`, `sensitivity` and `compare` where they have answered, the near-misses,
// the diverged trainings and the progress chart.
import { divergedThreshold, formatScore, shortScore } from '../../activities/results';
import {
  NO_COMMIT, type Ablation, type Comparison, type ExperimentRecord, type ExperimentStatus, type Sensitivity, type Verdict,
} from '../../workflows/types';
import { ABLATION_PNG, ABLATION_SVG, ablationRows, EFFECTS, finite, signed } from './ablation';
import { compareLines } from './compare';
import { CHART_PNG, CHART_SVG, CONFIRMED, latestSigma, scoredValue, tagOf } from './progress';
import { sensitivityLines } from './sensitivity';

const OVERHEAD_IS = 'proposing, committing, waiting for a slot, start-up and evaluation';

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
    '| # | experiment | commit | val_bpb | delta vs previous best | description | found by |',
    '|---|---|---|---|---|---|---|',
    ...keptChanges(records).map(({ record, previous, delta }, i) => {
      const sign = delta !== null && delta > 0 ? '+' : '';
      const d = delta === null || previous === null
        ? 'baseline'
        : `${sign}${formatScore(delta)} (${sign}${pct(delta, previous)})`;
      const value = formatScore(scoredValue(record)!) + runsNote(record);
      return `| ${i + 1} | ${record.id} | ${shortCommit(record)} | ${value} | ${d} | ${cell(record.description)} | ${record.proposer} |`;
    }),
  ];
}

/** Where keeps came from more than one proposer (--proposer mixed), how many each found. */
function keepsByProposer(records: ExperimentRecord[]): string[] {
  const keeps = records.filter((r) => r.status === 'keep' && r.proposer !== 'baseline');
  const by = [...new Set(keeps.map((r) => r.proposer))];
  if (by.length < 2) return [];
  return [`- keeps by proposer: ${by.map((p) => `${p} ${keeps.filter((r) => r.proposer === p).length}`).join(', ')}`];
}

/** Crashes that point at a candidate gaming the scorer rather than training: read their diffs first. */
function suspectLines(records: ExperimentRecord[]): string[] {
  const suspect = records.filter((r) => r.status === 'crash' && /^(implausible score|tampered harness|evaluation failed: tampered harness)/.test(r.reason));
  if (suspect.length === 0) return [];
  return [`- suspect: ${suspect.length} crash(es) for an implausible score or a tampered harness (${suspect.map((r) => r.id).join(', ')}): a candidate may be gaming the scorer; read their diffs`];
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

/** The morning questions' answers, where they were asked. */
export interface MorningAnswers {
  verdict?: Verdict | null;
  ablation?: Ablation | null;
  comparison?: Comparison | null;
  sensitivity?: Sensitivity | null;
}

/** summary.md of a tag that only `compare` has used: no night, only the answer. */
export function answersOnlyMarkdown(tag: string, notes: string[], morning: MorningAnswers): string {
  const compare = compareLines(morning.comparison ?? null);
  const sensitivity = sensitivityLines(morning.sensitivity ?? null);
  return [
    `# autoresearch report: ${tag}`,
    '',
    `- tag: ${tag}`,
    ...compare.key,
    ...sensitivity.key,
    ...notes.map((n) => `- note: ${n}`),
    '',
    ...sensitivity.section,
    ...compare.section,
  ].join('\n');
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
  const compare = compareLines(morning.comparison ?? null);
  const sensitivity = sensitivityLines(morning.sensitivity ?? null);
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
    ...keepsByProposer(records),
    `- chart: ${CHART_SVG} (also ${CHART_PNG})`,
    ...ablation.key,
    ...sensitivity.key,
    ...compare.key,
    ...notes.map((n) => `- note: ${n}`),
    '',
    '## Kept changes',
    '',
    ...keptTable(records),
    '',
    ...ablation.section,
    ...sensitivity.section,
    ...compare.section,
    ...misses.section,
    ...diverged.section,
    '## Progress',
    '',
    `![val_bpb per experiment](${CHART_SVG})`,
    '',
  ];
  return lines.join('\n');
}
