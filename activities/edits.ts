// The LLM's answer protocol: {"description", "edits": [{"path", "search", "replace"}]}. Everything
// here is pure or local (python3 for the parse check), so a bad answer is explained, not retried.
import { spawnSync } from 'node:child_process';
import { posix } from 'node:path';

export interface Edit {
  path: string;
  search: string;
  replace: string;
}

export interface Answer {
  description: string;
  edits: Edit[];
  base?: 'best' | 'crashed';
}

/** A bad answer: the reason goes back to the model. */
export class InvalidAnswer extends Error {}

export const ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['description', 'edits', 'base'],
  properties: {
    description: { type: 'string', description: 'one short line: what changed and why' },
    base: { type: 'string', enum: ['best', 'crashed'], description: 'which version the edits apply to' },
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

/** The JSON object itself, or the first one inside a fenced block or the text, for servers that ignore response_format. */
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
  throw new InvalidAnswer('the answer is not a JSON object: reply with only {"description": ..., "edits": [...], "base": ...}');
}

function checkShape(value: unknown): Answer {
  const a = value as Answer;
  if (typeof value !== 'object' || value === null || typeof a.description !== 'string' || !Array.isArray(a.edits)) {
    throw new InvalidAnswer('the answer must be an object with a string "description" and an array "edits"');
  }
  if (!a.description.trim()) throw new InvalidAnswer('the description is empty: say in one line what the change is');
  if (a.edits.length === 0) throw new InvalidAnswer('"edits" is empty: propose at least one change');
  for (const e of a.edits) {
    if (typeof e?.path !== 'string' || typeof e.search !== 'string' || typeof e.replace !== 'string') {
      throw new InvalidAnswer('each edit needs string "path", "search" and "replace"');
    }
  }
  if (a.base !== undefined && a.base !== 'best' && a.base !== 'crashed') throw new InvalidAnswer('"base" must be "best" or "crashed"');
  return { description: a.description.trim().split('\n')[0].slice(0, 200), edits: a.edits, base: a.base };
}

function occurrences(haystack: string, needle: string): number {
  let count = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) count++;
  return count;
}

/** Applies the edits in order; paths stay in the editable set; each search text occurs exactly once. */
export function applyEdits(files: Record<string, string>, edits: Edit[], editable: string[]): Record<string, string> {
  const out = { ...files };
  for (const { path, search, replace } of edits) {
    const normalized = posix.normalize(path.replace(/^\.\//, ''));
    if (!editable.includes(normalized)) {
      throw new InvalidAnswer(`"${path}" is not an editable file; you may only edit ${editable.join(', ')}`);
    }
    if (search === '') {
      out[normalized] = replace; // an empty search rewrites the whole file
      continue;
    }
    const count = occurrences(out[normalized], search);
    if (count !== 1) {
      const where = count === 0 ? 'does not occur' : `occurs ${count} times`;
      throw new InvalidAnswer(`the search text of an edit to ${normalized} ${where} in the file; copy it exactly, with enough context to be unique:\n${search.slice(0, 300)}`);
    }
    out[normalized] = out[normalized].replace(search, () => replace);
  }
  if (editable.every((p) => out[p] === files[p])) throw new InvalidAnswer('the edits change nothing');
  return out;
}

/** Python files must at least parse; the message names the line. */
export function checkPython(files: Record<string, string>): void {
  for (const [path, source] of Object.entries(files)) {
    if (!path.endsWith('.py')) continue;
    const check = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read(), sys.argv[1])', path], { input: source, encoding: 'utf8' });
    if (check.error) return; // no python3 on this host: the training will tell
    if (check.status !== 0) {
      const detail = check.stderr.trim().split('\n').slice(-3).join(' ');
      throw new InvalidAnswer(`${path} does not parse as Python: ${detail}`);
    }
  }
}
