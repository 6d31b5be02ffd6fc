// Flag parsing and validation at the edge: every malformed value becomes one clear line.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isCidr } from '../gpu-worker/egress';
import { UserError } from './errors';

export type Flags = Record<string, string | boolean | undefined>;

/** Parses `argv` for one verb; unknown flags (with the nearest known one) and missing values are user errors. */
export function parseFlags(
  verb: string,
  argv: string[],
  options: NonNullable<ParseArgsConfig['options']>,
): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { flags: values as Flags, positionals };
  } catch (err) {
    const message = (err as Error).message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '');
    const unknown = /^Unknown option '(--?[^'=]+)/.exec(message)?.[1];
    if (!unknown) throw new UserError(`${verb}: ${message}`);
    const guess = nearest(unknown.replace(/^-+/, ''), Object.keys(options));
    const hint = guess ? `did you mean --${guess}?` : `see npx autoresearch ${verb} --help`;
    throw new UserError(`${verb}: Unknown option '${unknown}' (${hint})`);
  }
}

/** The known name closest to a mistyped one, if it is close: a prefix of it, or a few edits away. */
export function nearest(typed: string, known: string[]): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const name of known) {
    const distance = name.startsWith(typed) || typed.startsWith(name) ? 1 : editDistance(typed, name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.name.length / 4)) ? best.name : null;
}

/** Levenshtein distance: insertions, deletions and substitutions each count one. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** "300", "300s", "5m", "1h30m", "1.5h" → milliseconds (a bare number is seconds). */
export function parseDuration(flag: string, text: string): number {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return positive(flag, Number(trimmed) * 1000, text);
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new UserError(`${flag}: "${text}" is not a duration (try 90s, 5m or 1h30m)`);
  }
  return positive(flag, parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]], 0), text);
}

function positive(flag: string, ms: number, text: string): number {
  if (!(ms > 0)) throw new UserError(`${flag}: "${text}" must be longer than zero`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A size such as `12G`, `512M`, `1.5GiB` or `1048576` (bytes); a user's mistake is one line. */
export function parseSize(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  const bytes = match ? Math.floor(Number(match[1]) * SIZE_UNITS[match[2].toLowerCase()]) : NaN;
  if (!(bytes >= 1024 ** 2)) throw new UserError(`${flag}: "${text}" is not a size of at least 1M (e.g. 16G, 512M)`);
  return bytes;
}

export function parseCount(flag: string, text: string, min = 1): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) throw new UserError(`${flag}: "${text}" is not a whole number ≥ ${min}`);
  return Number(text);
}

export function parseNumber(flag: string, text: string, min = 0, max = Infinity): number {
  const value = Number(text);
  const range = max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new UserError(`${flag}: "${text}" is not a number ${range}`);
  }
  return value;
}

/** "07:30" (the next such local time), or an ISO date-time, → epoch ms in the future. */
export function parseUntil(text: string, now = Date.now()): number {
  const clock = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  let when: number;
  if (clock) {
    const [h, m] = [Number(clock[1]), Number(clock[2])];
    if (h > 23 || m > 59) throw new UserError(`--until: "${text}" is not a time of day`);
    const date = new Date(now);
    date.setHours(h, m, 0, 0);
    if (date.getTime() <= now) date.setDate(date.getDate() + 1);
    when = date.getTime();
  } else {
    when = Date.parse(text);
    if (Number.isNaN(when)) throw new UserError(`--until: "${text}" is not a time (try 07:30 or 2026-11-28T07:30)`);
  }
  if (when <= now) throw new UserError(`--until: ${text} is in the past`);
  return when;
}

/** Tags become workflow ids, branch names and ref paths: keep them to safe characters. */
export function parseTag(text: string | undefined): string {
  if (!text) throw new UserError('a tag is required (e.g. --tag nov27)');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text) || text.includes('..') || text.endsWith('.') || text.endsWith('.lock')) {
    throw new UserError(`tag "${text}" may use letters, digits, ".", "_" and "-" only (at most 64)`);
  }
  return text;
}

export function required(flags: Flags, name: string, verb: string): string {
  const value = flags[name];
  if (typeof value !== 'string' || value === '') throw new UserError(`${verb}: --${name} is required`);
  return value;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s % 60 === 0 && s >= 60 ? `${s / 60}m` : `${s}s`;
}

/** A comma-separated list of IPv4 CIDRs; `needs` names the flag it requires, when that is not given. */
export function parseCidrs(flag: string, text: string | undefined, needs: string | null): string[] {
  if (text === undefined) return [];
  if (needs) throw new UserError(`${flag} applies with ${needs} only (egress-only networking)`);
  const cidrs = text.split(',').map((c) => c.trim()).filter(Boolean);
  const bad = cidrs.find((c) => !isCidr(c));
  if (bad !== undefined || cidrs.length === 0) throw new UserError(`${flag}: "${bad ?? text}" is not an IPv4 CIDR like 192.168.1.0/24`);
  return cidrs;
}
