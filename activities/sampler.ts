// The tpe and cmaes proposers (and mixed's knob turns): Optuna's samplers (sampler.py) over the knobs of the
// baseline's editable file. Each proposal asks the sampler once, telling it every experiment recorded so far
// on the best's code (its knob values read from its commit, its val_bpb, or a crash): nothing lives only in
// a process, and a replayed history asks nothing.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import {
  CANDIDATE_REF_PREFIX, CONFIG_FILE, experimentId, type ExperimentRecord, type Proposal, type RunConfig,
} from '../workflows/types';
import { describeChange, PROVISIONED_PYTHON } from './edits';
import { readFileAt, resolve } from './git';
import { RepoError } from './repo';
import { findHyperparameters, formatValue, knobValues, lineEdit, type Hyperparameter } from './sweep';

const SAMPLER_TIMEOUT_MS = 60_000; // a TPE ask over a few hundred trials takes seconds
const DEFAULT_SPAN = 10; // with no range given, a knob ranges over ÷10 … ×10 of the baseline's value

export interface Range {
  low: number;
  high: number;
  log: boolean;
  int: boolean;
}

/**
 * The range of each knob: autoresearch.json's `"search": {"LR": {"low": 1e-4, "high": 0.1, "log": true}}`
 * where it names any (then only those), else ÷10 … ×10 of the value on a log scale (an integer from a
 * quarter of it, at least 1, to four times it; a fraction in (0,1) stays inside it).
 */
export function searchSpace(params: Hyperparameter[], configured: Record<string, Partial<Range>> | undefined): Record<string, Range> {
  const space: Record<string, Range> = {};
  if (configured && Object.keys(configured).length) {
    for (const [name, r] of Object.entries(configured)) {
      const p = params.find((q) => q.name === name);
      if (!p) throw new RepoError(`${CONFIG_FILE} "search" names ${name}, which is not an UPPER_CASE = number knob of the editable file`);
      if (typeof r.low !== 'number' || typeof r.high !== 'number' || !(r.low < r.high))
        throw new RepoError(`${CONFIG_FILE} "search".${name}: expected {"low": number, "high": number} with low < high`);
      if (r.log && r.low <= 0) throw new RepoError(`${CONFIG_FILE} "search".${name}: a log range needs low > 0`);
      space[name] = { low: r.low, high: r.high, log: !!r.log, int: r.int ?? p.isInt };
    }
    return space;
  }
  for (const p of params) {
    const v = p.value;
    if (p.isInt) space[p.name] = { low: Math.max(1, Math.floor(v / 4)), high: Math.max(2, v * 4), log: true, int: true };
    else if (v >= 1 || v <= 0.5) space[p.name] = { low: v / DEFAULT_SPAN, high: v >= 1 ? v * DEFAULT_SPAN : Math.min(v * DEFAULT_SPAN, (1 + v) / 2), log: true, int: false };
    else space[p.name] = { low: Math.max(v / DEFAULT_SPAN, 1 - (1 - v) * DEFAULT_SPAN), high: 1 - (1 - v) / DEFAULT_SPAN, log: false, int: false };
  }
  return space;
}

const SOURCES_KEPT = 2_000; // a few nights of trials: the oldest are read again from git when asked
const sources = new Map<string, string>(); // commit:path → the file: a commit never changes

async function fileAt(repo: string, commit: string, path: string): Promise<string> {
  const key = `${commit}:${path}`;
  if (!sources.has(key)) {
    if (sources.size >= SOURCES_KEPT) sources.delete(sources.keys().next().value!);
    sources.set(key, await readFileAt(repo, commit, path));
  }
  return sources.get(key)!;
}

/** The file with its knobs' values blanked: two trials of one code differ in nothing else. */
function codeOf(source: string): string {
  let code = source;
  for (const p of findHyperparameters(source).reverse()) code = code.slice(0, p.start) + '#' + code.slice(p.start + p.literal.length);
  return code;
}

/** One question to sampler.py: the next values of the knobs (its request as sampler.py says). */
export function askSampler(request: object): Promise<Record<string, number>> {
  return new Promise((done, fail) => {
    const child = execFile(
      PROVISIONED_PYTHON, ['-I', join(__dirname, 'sampler.py')], { timeout: SAMPLER_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) return fail(new Error(`the sampler failed (${stderr.trim().split('\n').at(-1) ?? err.message}); is optuna provisioned? (npx autoresearch provision)`));
        done(JSON.parse(stdout) as Record<string, number>);
      },
    );
    child.stdin!.end(JSON.stringify(request));
  });
}

/** A trial of the sampler on the best: the knobs set to what it asks, the rest of the file as the best has it. */
export async function proposeBySampler(
  config: RunConfig,
  sampler: 'tpe' | 'cmaes',
  key: number,
  best: Record<string, string>,
  records: ExperimentRecord[],
): Promise<Proposal> {
  const baseline = await resolve(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/${experimentId(config.tag, 0)}`);
  const path = config.editable.find((p) => findHyperparameters(best[p]).length > 0);
  if (!path || !baseline)
    return { ok: false, reason: 'no UPPER_CASE = number hyperparameters in the editable files', tokens: 0, final: true };
  const configured = await readFileAt(config.repo, baseline, CONFIG_FILE).then(
    (text) => (JSON.parse(text) as { search?: Record<string, Partial<Range>> }).search,
    () => undefined,
  );
  const space = searchSpace(findHyperparameters(await fileAt(config.repo, baseline, path)), configured);
  // Told: every recorded trial of the best's code (a code change the llm kept under mixed starts a new history).
  const trials = [];
  for (const r of records.filter((x) => x.commit)) {
    const value = r.status === 'crash' ? null : r.valBpb;
    if (r.status !== 'crash' && value === null) continue; // cancelled: no result to tell
    const source = await fileAt(config.repo, r.commit!, path);
    if (codeOf(source) === codeOf(best[path])) trials.push({ params: knobValues(source), value });
  }
  const asked = await askSampler({ sampler, seed: config.seed * 1_000_003 + key, space, trials });
  let source = best[path];
  const edits = [];
  const moved: string[] = [];
  for (const name of Object.keys(space)) {
    const p = findHyperparameters(source).find((q) => q.name === name);
    const literal = p && formatValue(asked[name], p.isInt);
    if (!p || !literal || Number(literal) === p.value) continue;
    const content = source.slice(0, p.start) + literal + source.slice(p.start + p.literal.length);
    edits.push({ path, ...lineEdit(source, content, p.start, p.start + p.literal.length) });
    moved.push(`${name} ${p.literal} -> ${literal}`);
    source = content;
  }
  if (moved.length === 0) return { ok: false, reason: `${sampler} asked for the best's own values`, tokens: 0 };
  const files = { ...best, [path]: source };
  return { ok: true, description: `${sampler}: ${moved.join(', ')}`, files, edits, change: describeChange(best, files), tokens: 0 };
}
