// The LLM's answer protocol: {"description", "base", "set": {NAME: value}, "edits": [{"path", "search", "replace"}]},
// applied and checked here. Everything is pure or local (a Python child process for the checker), so a bad
// answer is explained to the model, not retried blindly: each reason names what to do instead.
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import type { Edit } from '../workflows/types';

const DESCRIPTION_CHARS = 200;
const CHANGE_CHARS = 200; // a computed change: one line of the model's history and of results.jsonl
const QUOTE_CHARS = 120; // a search text or a file line quoted back to the model
const CLOSEST_LINES = 3; // shown when a search text is absent: enough to spot the right one
const FINDINGS_SHOWN = 3;
const CHECK_TIMEOUT_MS = 30_000; // pyflakes reads a training script in well under a second
const CHECKED_KEPT = 64; // sources whose findings are remembered: the best version is checked once, not per proposal
const LCS_CELLS = 4_000_000; // a line diff beyond this compares the changed region as a whole
// The Python environment `npx autoresearch provision` builds (scripts/provision.ts): pyflakes and optuna are installed there.
const CACHE_DIR = process.env.AUTORESEARCH_CACHE ?? join(homedir(), '.cache', 'autoresearch');
export const PROVISIONED_PYTHON = join(CACHE_DIR, 'python', 'bin', 'python');

export type Literal = number | string | boolean;

export interface Answer {
  description: string;
  edits: Edit[];
  set: Record<string, Literal>; // top-level UPPER_CASE constants, by name
  base?: 'best' | 'crashed';
}

/** What was wrong: unreadable (format), not applicable to the files (apply), or code that cannot run (check). */
export type Problem = 'format' | 'apply' | 'check';

/** A bad answer: the reason goes back to the model. */
export class InvalidAnswer extends Error {
  constructor(
    message: string,
    readonly kind: Problem = 'format',
  ) {
    super(message);
  }
}

// Not `strict`: a map of constants by name is not expressible in strict mode, and servers that build a grammar from
// the schema (llama.cpp, Ollama) follow it anyway. `set` comes before `edits`, so a model meets the easy way first.
export const ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['description', 'base', 'set', 'edits'],
  properties: {
    description: { type: 'string', description: 'one short line: what changed and why' },
    base: { type: 'string', enum: ['best', 'crashed'], description: 'which version the edits apply to' },
    set: {
      type: 'object',
      description: 'new values of top-level UPPER_CASE constants, by name, e.g. {"LEARNING_RATE": 0.009}; {} for none',
      additionalProperties: { type: ['number', 'string', 'boolean'] },
    },
    edits: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'search', 'replace'],
        properties: { path: { type: 'string' }, search: { type: 'string' }, replace: { type: 'string' } },
      },
    },
  },
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// Reading the answer
// ---------------------------------------------------------------------------------------------------------------------

/** The JSON object itself, or the first one in a fenced block or the text (servers that ignore response_format). */
export function parseAnswer(text: string): Answer {
  const candidates = [text.trim(), ...[...text.matchAll(/```(?:json)?\s*\n([\s\S]*?)```/g)].map((m) => m[1])];
  const brace = text.indexOf('{');
  if (brace >= 0) candidates.push(text.slice(brace, text.lastIndexOf('}') + 1));
  for (const candidate of candidates) {
    let value: unknown;
    try {
      value = JSON.parse(candidate);
    } catch {
      continue;
    }
    return checkShape(value);
  }
  throw new InvalidAnswer(
    'the answer is not a JSON object: reply with only {"description": ..., "base": ..., "set": {...}, "edits": [...]}',
  );
}

function checkShape(value: unknown): Answer {
  const a = value as Partial<Answer>;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof a.description !== 'string') {
    throw new InvalidAnswer(
      'the answer must be an object with a string "description", a "set" object and an "edits" array',
    );
  }
  if (!a.description.trim()) throw new InvalidAnswer('the description is empty: say in one line what the change is');
  const edits = a.edits ?? [];
  const set = a.set ?? {};
  if (!Array.isArray(edits)) throw new InvalidAnswer('"edits" must be an array of {"path", "search", "replace"}');
  if (typeof set !== 'object' || set === null || Array.isArray(set)) {
    throw new InvalidAnswer('"set" must be an object of constants by name, e.g. {"LEARNING_RATE": 0.009}');
  }
  for (const e of edits) {
    if (typeof e?.path !== 'string' || typeof e.search !== 'string' || typeof e.replace !== 'string') {
      throw new InvalidAnswer('each edit needs string "path", "search" and "replace"');
    }
  }
  for (const [name, v] of Object.entries(set)) {
    if (!['number', 'string', 'boolean'].includes(typeof v) || (typeof v === 'number' && !Number.isFinite(v))) {
      throw new InvalidAnswer(`"set": the value of ${name} must be a finite number, a string or true/false`);
    }
  }
  if (edits.length === 0 && Object.keys(set).length === 0) {
    throw new InvalidAnswer('"set" and "edits" are both empty: propose at least one change');
  }
  if (a.base !== undefined && a.base !== 'best' && a.base !== 'crashed') {
    throw new InvalidAnswer('"base" must be "best" or "crashed"');
  }
  const description = a.description.trim().split('\n')[0].slice(0, DESCRIPTION_CHARS);
  return { description, edits, set: set as Record<string, Literal>, base: a.base };
}

// ---------------------------------------------------------------------------------------------------------------------
// Search/replace edits
// ---------------------------------------------------------------------------------------------------------------------

const quote = (text: string) => JSON.stringify(text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text);
const lineAt = (source: string, index: number) => source.slice(0, index).split('\n').length;

function positions(haystack: string, needle: string): number[] {
  const found: number[] = [];
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) found.push(i);
  return found;
}

/** Dice similarity of character bigrams: 1 for equal strings, 0 for nothing in common. */
function similarity(a: string, b: string): number {
  const grams = (s: string) => Array.from({ length: Math.max(0, s.length - 1) }, (_, i) => s.slice(i, i + 2));
  const left = grams(a);
  const right = grams(b);
  if (left.length === 0 || right.length === 0) return a === b ? 1 : 0;
  const pool = new Map<string, number>();
  for (const g of left) pool.set(g, (pool.get(g) ?? 0) + 1);
  let shared = 0;
  for (const g of right) {
    const n = pool.get(g) ?? 0;
    if (n > 0) {
      shared++;
      pool.set(g, n - 1);
    }
  }
  return (2 * shared) / (left.length + right.length);
}

/** The file's lines most like the search text's first line, best first, numbered as in an editor. */
export function closestLines(source: string, search: string, count = CLOSEST_LINES): { line: number; text: string }[] {
  const code = (line: string) => line.replace(/\s+#.*$/, '').trim(); // a long comment would hide the matching code
  const target = code(search.split('\n').find((l) => l.trim()) ?? '');
  return source
    .split('\n')
    .map((text, i) => ({ line: i + 1, text, score: similarity(code(text), target) }))
    .filter((l) => l.text.trim() && l.score > 0)
    .sort((a, b) => b.score - a.score || a.line - b.line)
    .slice(0, count)
    .map(({ line, text }) => ({ line, text }));
}

function absentMessage(label: string, path: string, version: string, source: string, search: string): string {
  const closest = closestLines(source, search);
  const shown = closest.map(
    (l) => `  ${l.line}: ${l.text.length > QUOTE_CHARS ? `${l.text.slice(0, QUOTE_CHARS)}…` : l.text}`,
  );
  const constant = closest.length ? topLevelConstants(source).find((c) => c.line === closest[0].line) : undefined;
  const hint = constant ? ` To change a top-level constant, "set": {"${constant.name}": <new value>} is simpler.` : '';
  return [
    `${label}: its search text ${quote(search)} does not occur in ${path} of ${version}.`,
    ...(shown.length ? [`The lines of ${path} closest to it are:`, ...shown] : []),
    `Copy "search" exactly from ${path} as shown to you, whitespace included.${hint}`,
  ].join('\n');
}

/**
 * Applies the edits in order; paths stay in the editable set; each search text occurs exactly once and changes
 * something. `version` names the files the edits were searched in (e.g. `the best version (1a2b3c4)`) in the reasons.
 */
export function applyEdits(
  files: Record<string, string>,
  edits: Edit[],
  editable: string[],
  version = 'the file shown',
): Record<string, string> {
  const out = { ...files };
  edits.forEach(({ path, search, replace }, i) => {
    const label = edits.length > 1 ? `edit ${i + 1} of ${edits.length}` : 'the edit';
    const normalized = posix.normalize(path.replace(/^\.\//, ''));
    if (!editable.includes(normalized)) {
      throw new InvalidAnswer(
        `${label}: "${path}" is not an editable file; you may only edit ${editable.join(', ')}`,
        'apply',
      );
    }
    if (search === replace) {
      throw new InvalidAnswer(`${label} changes nothing: its "replace" is the same as its "search"`, 'apply');
    }
    if (search === '') {
      out[normalized] = replace; // an empty search rewrites the whole file
      return;
    }
    const source = out[normalized] ?? '';
    const found = positions(source, search);
    if (found.length === 0) throw new InvalidAnswer(absentMessage(label, normalized, version, source, search), 'apply');
    if (found.length > 1) {
      const lines = found
        .slice(0, 5)
        .map((at) => lineAt(source, at))
        .join(', ');
      const where = `${normalized} of ${version} (lines ${lines}${found.length > 5 ? ', …' : ''})`;
      throw new InvalidAnswer(
        `${label}: its search text ${quote(search)} occurs ${found.length} times in ${where}; ` +
          'copy more of the surrounding lines into "search" so that it occurs exactly once.',
        'apply',
      );
    }
    out[normalized] = source.slice(0, found[0]) + replace + source.slice(found[0] + search.length);
  });
  if (Object.keys(out).every((p) => out[p] === files[p])) {
    throw new InvalidAnswer(`the edits change nothing: the files are the same as ${version}`, 'apply');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Top-level constants: read by describeChange, written by "set"
// ---------------------------------------------------------------------------------------------------------------------

const NUMBER = String.raw`[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?`;
const STRING = String.raw`"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'`;
const CONSTANT = new RegExp(
  String.raw`^([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*(${NUMBER}|${STRING}|True|False|None)([ \t]*(?:#.*)?)$`,
  'gm',
);

export interface Constant {
  name: string;
  literal: string;
  tail: string; // what follows the literal on its line: spacing and the comment
  text: string; // the whole line
  line: number;
  start: number; // offset of the line in the source
}

/** Every `NAME = literal  # comment` at column 0 (a top-level constant), in file order. */
export function topLevelConstants(source: string): Constant[] {
  return [...source.matchAll(CONSTANT)].map((m) => ({
    name: m[1],
    literal: m[2],
    tail: m[3],
    text: m[0],
    line: lineAt(source, m.index!),
    start: m.index!,
  }));
}

function kindOf(literal: string): 'number' | 'string' | 'boolean' | 'None' {
  if (literal === 'True' || literal === 'False') return 'boolean';
  if (literal === 'None') return 'None';
  return /^["']/.test(literal) ? 'string' : 'number';
}

/** The Python literal for `value` where `old` stood: same kind, a float stays a float, quotes as before. */
export function pythonLiteral(name: string, old: string, value: Literal): string {
  const kind = kindOf(old);
  const numeric = typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value));
  const asNumber = kind === 'number' && numeric ? Number(value) : value; // weak models quote numbers
  if (kind !== 'None' && typeof asNumber !== kind) {
    throw new InvalidAnswer(
      `"set": ${name} is a ${kind} (${old}), so its new value must be a ${kind}, not ${JSON.stringify(value)}`,
      'apply',
    );
  }
  if (typeof asNumber === 'boolean') return asNumber ? 'True' : 'False';
  if (typeof asNumber === 'number') {
    if (!Number.isFinite(asNumber)) {
      throw new InvalidAnswer(`"set": ${name} must be a finite number, not ${JSON.stringify(value)}`, 'apply');
    }
    const text = String(asNumber);
    const wasFloat = kind === 'number' && /[.eE]/.test(old);
    return wasFloat && !/[.e]/.test(text) ? `${text}.0` : text;
  }
  if (old.startsWith("'")) return `'${asNumber.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  return JSON.stringify(asNumber);
}

/**
 * Sets top-level constants by name, keeping each line's comment. Returns the files and the equivalent edits (the old
 * line searched, the new line as replace), so a proposal made with "set" is re-applied like any other.
 */
export function applySet(
  files: Record<string, string>,
  set: Record<string, Literal>,
  editable: string[],
): { files: Record<string, string>; edits: Edit[] } {
  const out = { ...files };
  const edits: Edit[] = [];
  for (const [name, value] of Object.entries(set)) {
    const defined = editable.flatMap((path) =>
      topLevelConstants(out[path] ?? '')
        .filter((c) => c.name === name)
        .map((c) => ({ path, c })),
    );
    if (defined.length === 0) {
      const names = editable.flatMap((path) => topLevelConstants(out[path] ?? '').map((c) => c.name));
      const known = names.length
        ? `the constants are ${[...new Set(names)].join(', ')}`
        : 'the editable files have none';
      throw new InvalidAnswer(
        `"set": ${name} is not a top-level constant (NAME = literal) of ${editable.join(', ')}; ${known}`,
        'apply',
      );
    }
    if (defined.length > 1) {
      const where = defined.map(({ path, c }) => `${path} line ${c.line}`).join(', ');
      throw new InvalidAnswer(
        `"set": ${name} is assigned ${defined.length} times at top level (${where}); use an edit instead`,
        'apply',
      );
    }
    const { path, c } = defined[0];
    const text = `${c.name} = ${pythonLiteral(name, c.literal, value)}${c.tail}`;
    if (text === c.text) throw new InvalidAnswer(`"set" changes nothing: ${name} is already ${c.literal}`, 'apply');
    out[path] = out[path].slice(0, c.start) + text + out[path].slice(c.start + c.text.length);
    edits.push({ path, search: c.text, replace: text });
  }
  return { files: out, edits };
}

// ---------------------------------------------------------------------------------------------------------------------
// What really changed
// ---------------------------------------------------------------------------------------------------------------------

/** Lines removed from `a` and added in `b`, in order (a longest-common-subsequence diff of the changed region). */
function lineDiff(a: string[], b: string[]): { removed: string[]; added: string[] } {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) (endA--, endB--);
  const x = a.slice(start, endA);
  const y = b.slice(start, endB);
  if (x.length * y.length > LCS_CELLS) return { removed: x, added: y };
  const width = y.length + 1;
  const table = new Uint32Array((x.length + 1) * width);
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      table[i * width + j] =
        x[i] === y[j]
          ? table[(i + 1) * width + j + 1] + 1
          : Math.max(table[(i + 1) * width + j], table[i * width + j + 1]);
    }
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    const same = i < x.length && j < y.length && x[i] === y[j];
    const add = !same && j < y.length && (i === x.length || table[i * width + j + 1] >= table[(i + 1) * width + j]);
    if (same) (i++, j++);
    else if (add) added.push(y[j++]);
    else removed.push(x[i++]);
  }
  return { removed, added };
}

/** `NAME old -> new` for each changed constant when the diff is nothing else, else null. */
function constantChanges(removed: string[], added: string[]): string[] | null {
  if (removed.length === 0 || removed.length !== added.length) return null;
  const parse = (lines: string[]) => lines.map((l) => topLevelConstants(l)[0]);
  const before = parse(removed);
  const after = parse(added);
  if (before.some((c) => !c) || after.some((c) => !c)) return null;
  const changes: string[] = [];
  for (const c of before) {
    const d = after.find((e) => e.name === c.name);
    if (!d || d.literal === c.literal) return null; // a renamed constant, or only its comment changed
    changes.push(`${c.name} ${c.literal} -> ${d.literal}`);
  }
  return new Set(after.map((c) => c.name)).size === changes.length ? changes : null;
}

const clip = (text: string, chars: number) => (text.length > chars ? `${text.slice(0, chars - 1)}…` : text);

/**
 * What really changed between two versions of the editable files, in one line of at most ~200 characters:
 * `LEARNING_RATE 0.006 -> 0.03` when only top-level constants changed, else each file's diff size and first lines.
 */
export function describeChange(before: Record<string, string>, after: Record<string, string>): string {
  const paths = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((p) => before[p] !== after[p])
    .sort();
  if (paths.length === 0) return 'no change';
  const diffs = paths.map((path) => ({
    path,
    ...lineDiff((before[path] ?? '').split('\n'), (after[path] ?? '').split('\n')),
  }));
  const constants = diffs.map((d) => constantChanges(d.removed, d.added));
  if (constants.every((c) => c !== null)) return clip(constants.flat().join(', '), CHANGE_CHARS);
  const parts = diffs.map(({ path, removed, added }) => {
    const first = [removed.find((l) => l.trim()), added.find((l) => l.trim())];
    const lines = [
      first[0] === undefined ? '' : ` -${first[0].trim()}`,
      first[1] === undefined ? '' : ` +${first[1].trim()}`,
    ].join('');
    return `${path} +${added.length} -${removed.length} lines:${lines}`;
  });
  return clip(parts.join('; '), CHANGE_CHARS);
}

// ---------------------------------------------------------------------------------------------------------------------
// Code that cannot run: the parse check and pyflakes
// ---------------------------------------------------------------------------------------------------------------------

// Findings that fail when the line runs (a NameError, a TypeError from a format, a SyntaxError at compile time);
// style findings such as an unused import are left to the researcher.
const FATAL = new Set(
  `UndefinedName UndefinedLocal UndefinedExport DuplicateArgument ReturnOutsideFunction YieldOutsideFunction
   BreakOutsideLoop ContinueOutsideLoop DefaultExceptNotLast TwoStarredExpressions TooManyExpressionsInStarredAssignment
   ForwardAnnotationSyntaxError FutureFeatureNotDefined LateFutureImport ImportStarNotPermitted RaiseNotImplemented
   PercentFormatInvalidFormat PercentFormatMixedPositionalAndNamed PercentFormatUnsupportedFormatCharacter
   PercentFormatPositionalCountMismatch PercentFormatMissingArgument PercentFormatExpectedMapping
   PercentFormatExpectedSequence PercentFormatStarRequiresSequence StringDotFormatInvalidFormat
   StringDotFormatMissingArgument StringDotFormatMixingAutomatic`.split(/\s+/),
);

// compile() after ast.parse refuses what only the compiler sees (`return` outside a function...); nothing is run.
const CHECKER = `
import ast, json, sys
source, path = sys.stdin.read(), sys.argv[1]
try:
    compile(ast.parse(source, path), path, "exec")
except SyntaxError as e:
    print(json.dumps({"syntax": f"line {e.lineno}: {e.msg}"}))
    sys.exit(0)
try:
    from pyflakes.checker import Checker
except ImportError:
    print(json.dumps({"findings": None}))
    sys.exit(0)
found = Checker(ast.parse(source, path), filename=path).messages
findings = [{"kind": type(m).__name__, "line": m.lineno, "text": m.message % m.message_args} for m in found]
print(json.dumps({"findings": findings}))
`;

export interface Finding {
  kind: string; // pyflakes' message class, e.g. UndefinedName
  line: number;
  text: string;
}

export interface CheckResult {
  syntax?: string; // `line 3: invalid syntax`
  findings: Finding[] | null; // null: pyflakes is not installed, the code was only parsed
}

export type Checker = { python: string; pyflakes: boolean } | null; // null: no Python at all
let checker: Checker | undefined; // looked for once per process

/** The interpreter to check with: the provisioned environment's, else python3, preferring one that has pyflakes. */
export function checkerPython(): Checker {
  if (checker === undefined) checker = findChecker();
  return checker;
}

function findChecker(): Checker {
  const candidates = [PROVISIONED_PYTHON, 'python3'].filter((p) => p === 'python3' || existsSync(p));
  const works = (python: string, code: string) =>
    spawnSync(python, ['-I', '-c', code], { timeout: CHECK_TIMEOUT_MS }).status === 0;
  const withFlakes = candidates.find((p) => works(p, 'import pyflakes'));
  const python = withFlakes ?? candidates.find((p) => works(p, 'pass'));
  if (python === undefined) {
    console.warn('autoresearch: no Python found: proposals are not checked before training');
    return null;
  }
  if (!withFlakes) {
    console.warn(
      'autoresearch: pyflakes is not installed: proposals are only parse-checked (`npx autoresearch provision`)',
    );
  }
  return { python, pyflakes: withFlakes !== undefined };
}

const checked = new Map<string, Promise<CheckResult>>(); // by path and source digest, oldest first

/**
 * Parses `source` and runs pyflakes over it; never executes it. Asynchronous: the worker that checks also runs
 * workflow tasks and starts trainings, which must not wait for a Python process.
 */
export function checkSource(path: string, source: string): Promise<CheckResult> {
  const key = `${path}\0${createHash('sha256').update(source).digest('hex')}`;
  let result = checked.get(key);
  if (!result) {
    result = runChecker(path, source);
    result.catch(() => checked.delete(key));
    checked.set(key, result);
    if (checked.size > CHECKED_KEPT) checked.delete(checked.keys().next().value!);
  }
  return result;
}

function runChecker(path: string, source: string): Promise<CheckResult> {
  const checker = checkerPython();
  if (!checker) return Promise.resolve({ findings: null });
  return new Promise((resolve, reject) => {
    const child = execFile(
      checker.python,
      ['-I', '-c', CHECKER, path], // isolated: no PYTHON* variables, user site or current folder on its path
      { encoding: 'utf8', timeout: CHECK_TIMEOUT_MS },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`the Python checker failed (${stderr.trim().split('\n').at(-1) || err.message})`));
        else resolve(JSON.parse(stdout) as CheckResult);
      },
    );
    child.stdin!.on('error', () => undefined); // a checker that dies before reading is reported by its exit above
    child.stdin!.end(source);
  });
}

/**
 * Refuses a candidate whose changed Python files do not parse or gain a pyflakes finding that fails at run time
 * (an undefined name...). Findings the file already had before are not the candidate's doing and pass.
 */
export async function validateCandidate(before: Record<string, string>, after: Record<string, string>): Promise<void> {
  for (const [path, source] of Object.entries(after)) {
    if (!path.endsWith('.py') || source === before[path]) continue;
    const result = await checkSource(path, source);
    if (result.syntax) throw new InvalidAnswer(`${path} does not parse as Python: ${result.syntax}`, 'check');
    if (!result.findings) continue;
    const known = new Set(
      (before[path] === undefined ? [] : ((await checkSource(path, before[path])).findings ?? [])).map(
        (f) => `${f.kind} ${f.text}`,
      ),
    );
    const fresh = result.findings.filter((f) => FATAL.has(f.kind) && !known.has(`${f.kind} ${f.text}`));
    if (fresh.length === 0) continue;
    const lines = source.split('\n');
    const shown = fresh
      .slice(0, FINDINGS_SHOWN)
      .map((f) => `line ${f.line} ${quote(lines[f.line - 1]?.trim() ?? '')}: ${f.text}`);
    const more = fresh.length > FINDINGS_SHOWN ? ` (and ${fresh.length - FINDINGS_SHOWN} more)` : '';
    throw new InvalidAnswer(`${path} would fail when run (pyflakes): ${shown.join('; ')}${more}`, 'check');
  }
}
