// The results of one run, in `results/<tag>/` of the research repo: results.jsonl (every field of every
// experiment, the source of truth) and results.tsv (the original's five columns, rewritten from the
// jsonl at each record: a view). One directory per tag, so two studies on one repo never mix, and a
// results.tsv the original autoresearch left at the repo's root is never read, written or counted.
// The directory is listed in .git/info/exclude: the repo never turns dirty and no .gitignore is touched.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { appendFile, copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { NO_COMMIT, RESULTS_JSONL, RESULTS_TSV, type ExperimentRecord, type ExperimentStatus } from '../workflows/types';
import { git } from './git';
import { RepoError } from './repo';

export const RESULTS_ROOT = 'results'; // the per-tag directories live under it, in the research repo
export const TSV_HEADER = 'commit\tval_bpb\tmemory_gb\tstatus\tdescription';
export const TSV_EDITED = `${RESULTS_TSV}.edited`; // a hand-edited results.tsv is kept under this name (+ .1, .2…)

// A diverged training is one scored far above the baseline. "Far" is the largest of three margins, so
// that neither a tiny baseline nor a noisy night marks ordinary results:
const DIVERGED_MIN_BPB = 0.1; // bits per byte: an absolute floor
const DIVERGED_MIN_FRACTION = 0.5; // of the baseline's val_bpb: 1.5× the baseline is a blow-up, not a tuning miss
const DIVERGED_SPREADS = 10; // median absolute deviations of the night's scores (10 MAD ≈ 7 σ)

const SCORE_DIGITS = 6; // val_bpb as the original's '%.6f'
const MEMORY_DIGITS = 1; // memory_gb as the original's '%.1f'
const BAD_TEXT_MAX = 80; // characters of a bad jsonl line quoted in a warning
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const STATUSES: ExperimentStatus[] = ['keep', 'discard', 'crash'];

// Errors that a retry would only meet again: the activity fails at once with the reason.
const DETERMINISTIC = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ENAMETOOLONG']);

export interface BadLine {
  line: number; // 1-based, in results.jsonl
  text: string;
  why: string;
}

export function resultsDir(repo: string, tag: string): string {
  if (!TAG.test(tag) || tag.includes('..')) throw new RepoError(`tag "${tag}" cannot name a results directory`);
  return join(repo, RESULTS_ROOT, tag);
}

/**
 * Python's '%.<digits>f' of a double: the exact binary value rounded half to even, in fixed notation
 * whatever its size (JavaScript's toFixed switches to exponent form at 1e21 and rounds ties up).
 */
export function formatFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  // x = mantissa × 2^power exactly; scaled = x × 10^digits, rounded to an integer.
  const mantissa = exponent === 0 ? fraction : fraction | (1n << 52n);
  const power = (exponent === 0 ? 1 : exponent) - 1075;
  const numerator = mantissa * 10n ** BigInt(digits);
  let scaled: bigint;
  if (power >= 0) scaled = numerator << BigInt(power);
  else {
    const denominator = 1n << BigInt(-power);
    scaled = numerator / denominator;
    const twice = (numerator % denominator) * 2n;
    if (twice > denominator || (twice === denominator && (scaled & 1n) === 1n)) scaled += 1n;
  }
  const text = scaled.toString().padStart(digits + 1, '0');
  const fixed = digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`;
  return (negative ? '-' : '') + fixed;
}

/** val_bpb as the original writes it ('%.6f'); no score is 0.000000, the original's mark of a crash. */
export function formatScore(x: number | null): string {
  return formatFixed(x ?? 0, SCORE_DIGITS);
}

/** A score in two significant digits for a line a person reads: `2.2e33`, `1e300`, `3.5`. */
export function shortScore(x: number): string {
  return String(Number(x.toPrecision(2))).replace('e+', 'e');
}

export function tsvRow(r: ExperimentRecord): string {
  const description = r.description.replace(/[\t\r\n]+/g, ' ').trim();
  const commit = (r.commit ?? NO_COMMIT).slice(0, 7);
  return [commit, formatScore(r.valBpb), formatFixed(r.memoryGb, MEMORY_DIGITS), r.status, description].join('\t');
}

export function jsonLine(r: ExperimentRecord): string {
  const logTailDigest = r.logTail ? createHash('sha256').update(r.logTail).digest('hex').slice(0, 16) : undefined;
  return JSON.stringify({ ...r, logTailDigest });
}

const finiteOrNull = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));

/** Why a parsed jsonl line is not an experiment record, or null when it is one. */
function notARecord(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id === '') return 'no id';
  if (!Number.isInteger(r.n)) return 'no experiment number n';
  if (!STATUSES.includes(r.status as ExperimentStatus)) return 'status is not keep, discard or crash';
  if (typeof r.description !== 'string') return 'no description';
  if (!finiteOrNull(r.valBpb) || typeof r.memoryGb !== 'number') return 'valBpb or memoryGb is not a number';
  return null;
}

function parseJsonl(text: string): { records: ExperimentRecord[]; bad: BadLine[] } {
  const records: ExperimentRecord[] = [];
  const bad: BadLine[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let why: string | null;
    let value: unknown;
    try {
      value = JSON.parse(line);
      why = notARecord(value);
    } catch {
      why = 'not valid JSON (a torn or hand-edited line)';
    }
    const id = why === null ? (value as ExperimentRecord).id : '';
    if (why === null && seen.has(id)) why = `repeats experiment ${id}`;
    const text = line.length > BAD_TEXT_MAX ? `${line.slice(0, BAD_TEXT_MAX)}…` : line;
    if (why !== null) bad.push({ line: i + 1, text, why });
    else {
      seen.add(id);
      records.push(value as ExperimentRecord);
    }
  });
  return { records, bad };
}

/** A file system error as a RepoError when a retry could not help; others (a full disk…) stay retryable. */
function judged(err: unknown, what: string): unknown {
  const e = err as NodeJS.ErrnoException;
  return e.code && DETERMINISTIC.has(e.code) ? new RepoError(`${what}: ${e.code} (${e.message})`) : err;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw judged(err, `cannot read ${path}`);
  }
}

/** The run's records, in the order they were written, with every line that is not one. */
export async function readRecordsChecked(
  repo: string,
  tag: string,
): Promise<{ records: ExperimentRecord[]; bad: BadLine[] }> {
  return parseJsonl(await readText(join(resultsDir(repo, tag), RESULTS_JSONL)));
}

/** One line about a results.jsonl line that is not a record: what `results` and `report` print. */
export function badLineWarning(repo: string, tag: string, bad: BadLine): string {
  const text = bad.text.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return `warning: ${join(resultsDir(repo, tag), RESULTS_JSONL)} line ${bad.line} skipped, ${bad.why}: ${text}`;
}

/** The run's records; a line that is not a record is skipped (readRecordsChecked says which). */
export async function readRecords(repo: string, tag: string): Promise<ExperimentRecord[]> {
  return (await readRecordsChecked(repo, tag)).records;
}

const excluded = new Set<string>(); // results directories already listed in their repo's info/exclude

/** Lists results/<tag>/ in .git/info/exclude, once: the repo's `git status` stays clean. */
async function excludeFromGit(repo: string, tag: string): Promise<void> {
  const line = `/${RESULTS_ROOT}/${tag}/`;
  if (excluded.has(join(repo, line))) return;
  const found = await git(repo).raw(['rev-parse', '--git-path', 'info/exclude']).catch(() => {
    throw new RepoError(`${repo} is not a git repository: cannot record results there`);
  });
  const path = isAbsolute(found.trim()) ? found.trim() : join(repo, found.trim());
  try {
    const text = await readText(path);
    if (!text.split('\n').includes(line)) {
      await mkdir(dirname(path), { recursive: true });
      await appendFile(path, `${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`);
    }
  } catch (err) {
    throw judged(err, `cannot list ${line} in ${path}`);
  }
  excluded.add(join(repo, line));
}

/** Copies a hand-edited results.tsv to the first free name: results.tsv.edited, then .edited.1, .edited.2… */
async function keepEdited(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    const name = i === 0 ? TSV_EDITED : `${TSV_EDITED}.${i}`;
    try {
      await copyFile(join(dir, RESULTS_TSV), join(dir, name), constants.COPYFILE_EXCL);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * results.tsv rewritten from the records (temp file + rename: a reader never sees half a file). One
 * holding the first rows of the expected file lags the jsonl (a record interrupted between the two
 * writes, a deleted file) and is completed; anything else is a hand edit, copied aside rather than
 * lost, since rows counted from an edited file would land on the wrong experiment.
 */
async function writeTsv(dir: string, records: ExperimentRecord[]): Promise<void> {
  const expected = [TSV_HEADER, ...records.map(tsvRow)];
  const current = await readText(join(dir, RESULTS_TSV));
  const lines = current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const lagging = current.endsWith('\n') && lines.length <= expected.length && lines.every((l, i) => l === expected[i]);
  if (lagging && lines.length === expected.length) return;
  if (current !== '' && !lagging) await keepEdited(dir);
  const temp = join(dir, `.${RESULTS_TSV}.${process.pid}.tmp`);
  await writeFile(temp, expected.join('\n') + '\n');
  await rename(temp, join(dir, RESULTS_TSV));
}

const queues = new Map<string, Promise<unknown>>();

/** One record at a time per results directory: lanes finish at the same moment in one control worker. */
function serialized<T>(key: string, work: () => Promise<T>): Promise<T> {
  const next = (queues.get(key) ?? Promise.resolve()).then(work);
  queues.set(key, next.catch(() => undefined));
  return next;
}

/**
 * Records one experiment of the run. Safe to repeat after a crash at any point: the jsonl gets the
 * record only if no line holds its id, and the tsv is rewritten from the jsonl. A torn line (a crash
 * mid-write, a hand edit) is left where it is and skipped; the new record starts on a line of its own.
 */
export async function appendRecord(repo: string, tag: string, record: ExperimentRecord): Promise<void> {
  const dir = resultsDir(repo, tag);
  await serialized(dir, async () => {
    await mkdir(dir, { recursive: true }).catch((err) => {
      throw judged(err, `cannot create ${dir}`);
    });
    await excludeFromGit(repo, tag);
    const jsonlPath = join(dir, RESULTS_JSONL);
    const text = await readText(jsonlPath);
    const { records } = parseJsonl(text);
    try {
      if (!records.some((r) => r.id === record.id)) {
        await appendFile(jsonlPath, `${text === '' || text.endsWith('\n') ? '' : '\n'}${jsonLine(record)}\n`);
        records.push(record);
      }
      await writeTsv(dir, records);
    } catch (err) {
      throw judged(err, `cannot write the results of ${tag} in ${dir}`);
    }
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The val_bpb above which a training counts as diverged: the baseline (experiment 0; the median score
 * when it has none) plus the largest of 0.1, half the baseline, and 10 median absolute deviations of
 * the scores. Medians, so a few absurd values (1e33) cannot stretch the rule that judges them.
 * Null when nothing scored.
 */
export function divergedThreshold(records: ExperimentRecord[]): number | null {
  const scored = records.map((r) => r.valBpb).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (scored.length === 0) return null;
  const baseline = records.find((r) => r.n === 0)?.valBpb;
  const anchor = typeof baseline === 'number' && Number.isFinite(baseline) ? baseline : median(scored);
  const center = median(scored);
  const mad = median(scored.map((v) => Math.abs(v - center)));
  return anchor + Math.max(DIVERGED_MIN_BPB, DIVERGED_MIN_FRACTION * Math.abs(anchor), DIVERGED_SPREADS * mad);
}
