// `report`: the night at a glance, written to the run's `results/<tag>/report/` in the research repo: the
// progress chart (progress.ts), the ablation's chart where `ablate` has answered (ablation.ts), each as SVG
// and PNG (render.ts), and summary.md (summary.ts), which leads with the verdict where `verify` has answered.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { writeMorning } from '../../activities/morning';
import { badLineWarning, readRecordsChecked, resultsDir } from '../../activities/results';
import { RESULTS_JSONL, type Ablation, type Verdict } from '../../workflows/types';
import { UserError } from '../errors';
import { ABLATION_PNG, ABLATION_SVG, ablationRows, ablationSpec } from './ablation';
import { CHART_PNG, CHART_SVG, chartData, chartSpec } from './progress';
import { pngHasText, writeChart } from './render';
import { summaryMarkdown, type MorningAnswers } from './summary';

export const REPORT_DIR = 'report'; // inside the run's results directory
export const SUMMARY_MD = 'summary.md';
// Written by `verify` and `ablate` beside results.jsonl; typed by writeMorning's own names, so the two never drift.
export const VERDICT_JSON: Parameters<typeof writeMorning>[1] = 'verdict.json';
export const ABLATION_JSON: Parameters<typeof writeMorning>[1] = 'ablation.json';

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
