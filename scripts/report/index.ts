// `report`: the night at a glance, written to the run's `results/<tag>/report/` in the research repo: the
// progress chart (progress.ts), the charts of `ablate`, `sensitivity` and `compare` where they have answered
// (ablation.ts, sensitivity.ts, compare.ts), each as SVG and PNG (render.ts), and summary.md (summary.ts),
// which leads with the verdict where `verify` has answered. A tag only `compare` has used gets its answer alone.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite/build/index';
import type { writeMorning } from '../../activities/morning';
import { badLineWarning, readRecordsChecked, resultsDir } from '../../activities/results';
import { RESULTS_JSONL, type Ablation, type Comparison, type Sensitivity, type Verdict } from '../../workflows/types';
import { UserError } from '../errors';
import { ABLATION_PNG, ABLATION_SVG, ablationRows, ablationSpec } from './ablation';
import { COMPARE_PNG, COMPARE_SVG, compareSpec } from './compare';
import { CHART_PNG, CHART_SVG, chartData, chartSpec } from './progress';
import { pngHasText, writeChart } from './render';
import { SENSITIVITY_PNG, SENSITIVITY_SVG, sensitivitySpec } from './sensitivity';
import { answersOnlyMarkdown, summaryMarkdown, type MorningAnswers } from './summary';

export const REPORT_DIR = 'report'; // inside the run's results directory
export const SUMMARY_MD = 'summary.md';
// Written by the morning questions beside results.jsonl; typed by writeMorning's own names, so the two never drift.
export const VERDICT_JSON: Parameters<typeof writeMorning>[1] = 'verdict.json';
export const ABLATION_JSON: Parameters<typeof writeMorning>[1] = 'ablation.json';
export const COMPARISON_JSON: Parameters<typeof writeMorning>[1] = 'comparison.json';
export const SENSITIVITY_JSON: Parameters<typeof writeMorning>[1] = 'sensitivity.json';

/** Where `report` wrote its files: the progress chart where there was a night, each question's where it was asked. */
export interface ReportPaths {
  markdown: string;
  charts: Partial<Record<'progress' | 'ablation' | 'sensitivity' | 'compare', { svg: string; png: string }>>;
}

/**
 * verdict.json, ablation.json, sensitivity.json or comparison.json beside the results: null where that question was not asked; one warning,
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
  warn(`warning: ${path} skipped: not what \`verify\`, \`ablate\`, \`sensitivity\` or \`compare\` writes`);
  return null;
}

async function readMorning(dir: string, warn: (line: string) => void): Promise<Required<MorningAnswers>> {
  const verdict = await readAnswer<Verdict>(join(dir, VERDICT_JSON), (v) => typeof v.line === 'string'
    && typeof v.gain === 'object' && typeof v.best === 'object' && typeof v.baseline === 'object', warn);
  const ablation = await readAnswer<Ablation>(join(dir, ABLATION_JSON), (v) => Array.isArray(v.changes)
    && typeof v.best === 'object' && v.best !== null, warn);
  const sensitivity = await readAnswer<Sensitivity>(join(dir, SENSITIVITY_JSON), (v) => Array.isArray(v.knobs)
    && typeof v.best === 'object' && v.best !== null, warn);
  const comparison = await readAnswer<Comparison>(join(dir, COMPARISON_JSON), (v) => Array.isArray(v.refs)
    && Array.isArray(v.pairs) && typeof v.line === 'string', warn);
  return { verdict, ablation, sensitivity, comparison };
}

/**
 * Writes progress.svg, progress.png and summary.md into results/<tag>/report/ of the research repo, and the
 * chart of each question asked; each results.jsonl line that is not a record is one warning.
 */
export async function writeReport(
  repo: string,
  tag: string,
  warn: (line: string) => void = console.error,
): Promise<ReportPaths> {
  const root = resolve(repo);
  const { records, bad } = await readRecordsChecked(root, tag);
  for (const line of bad) warn(badLineWarning(root, tag, line));
  const morning = await readMorning(resultsDir(root, tag), warn);
  if (records.length === 0 && !morning.comparison) {
    throw new UserError(`no experiments in ${join(resultsDir(root, tag), RESULTS_JSONL)} yet: nothing to report`);
  }
  const dir = join(resultsDir(root, tag), REPORT_DIR);
  await mkdir(dir, { recursive: true });
  const paths: ReportPaths = { markdown: join(dir, SUMMARY_MD), charts: {} };
  const chart = async (name: keyof ReportPaths['charts'], spec: TopLevelSpec, svg: string, png: string) => {
    paths.charts[name] = { svg: join(dir, svg), png: join(dir, png) };
    await writeChart(spec, paths.charts[name].svg, paths.charts[name].png);
  };
  if (records.length) await chart('progress', chartSpec(chartData(records)), CHART_SVG, CHART_PNG);
  if (morning.ablation) {
    const rows = ablationRows(morning.ablation, records);
    await chart('ablation', ablationSpec(rows, morning.ablation), ABLATION_SVG, ABLATION_PNG);
  }
  if (morning.sensitivity) await chart('sensitivity', sensitivitySpec(morning.sensitivity), SENSITIVITY_SVG, SENSITIVITY_PNG);
  if (morning.comparison) await chart('compare', compareSpec(morning.comparison), COMPARE_SVG, COMPARE_PNG);
  const noFonts = 'no fonts were found on this machine, so the PNGs have no text; the SVGs have it all';
  const notes = pngHasText() ? [] : [noFonts];
  const summary = records.length ? summaryMarkdown(records, notes, morning) : answersOnlyMarkdown(tag, notes, morning);
  await writeFile(paths.markdown, summary);
  return paths;
}

/** What `report TAG` prints: every file it wrote. */
export function reportLines(paths: ReportPaths): string {
  const [first, ...more] = Object.values(paths.charts).flatMap((c) => [c.svg, c.png]);
  return [`chart:   ${first}`, ...more.map((p) => `         ${p}`), `summary: ${paths.markdown}`].join('\n');
}
