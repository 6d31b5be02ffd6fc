// The offline proposer: changes one top-level `UPPER_CASE = number` hyperparameter of the best
// commit's editable file per experiment. Deterministic from (seed, experiment number, what was tried),
// never repeats a configuration already committed, and keeps every value in a sensible range.
// `sensitivity` uses the same knobs (and `UPPER_CASE = True/False` switches) on a grid around each value.
import { gitBlobId } from './harness';

export interface Hyperparameter {
  name: string;
  literal: string;
  value: number;
  isInt: boolean;
  start: number; // offset of the literal in the source
}

/** A knob that `sensitivity` moves: a hyperparameter, or a switch (`True`/`False`). */
export interface Knob {
  name: string;
  literal: string;
  start: number;
  grid: string[]; // the literals to train, the current one among them, in increasing order
}

export interface SweepChange {
  description: string; // e.g. `WEIGHT_DECAY 0.01 -> 0.02`
  change: string; // what changed: the same text, computed from the file
  content: string; // the whole file after the change
  edit: { search: string; replace: string }; // the changed line, unique in the file: re-applies on a newer best
}

const ASSIGNMENT = /^([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*([0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)[ \t]*(?=#|$)/gm;
const FACTORS = [2, 4, 8]; // tried in order: small steps first, bigger ones once those are used up

export function findHyperparameters(source: string): Hyperparameter[] {
  const found: Hyperparameter[] = [];
  for (const m of source.matchAll(ASSIGNMENT)) {
    const literal = m[2];
    const isInt = /^[0-9_]+$/.test(literal);
    const value = Number(literal.replace(/_/g, ''));
    if (!Number.isFinite(value) || value <= 0) continue; // zero and negatives have no scale to step along
    found.push({ name: m[1], literal, value, isInt, start: m.index! + m[0].indexOf(literal, m[1].length) });
  }
  return found;
}

/** Each knob's value, by name. */
export function knobValues(source: string): Record<string, number> {
  return Object.fromEntries(findHyperparameters(source).map((p) => [p.name, p.value]));
}

/**
 * The values one step up and down, in proportion to the value: ×factor and ÷factor, integers staying
 * ≥ 1. A fraction in (0,1) is taken to be bounded by 1: up to one half it scales like any number (a
 * step that would reach 1 is dropped), above one half its distance to 1 scales instead (BETA2 0.99 →
 * 0.995 or 0.98), so it never leaves (0,1) and never jumps across its range.
 */
export function steps(p: Hyperparameter, factor: number): number[] {
  let values: number[];
  if (p.isInt) values = [p.value * factor, Math.max(1, Math.round(p.value / factor))].filter(Number.isSafeInteger);
  else if (p.value >= 1) values = [p.value * factor, p.value / factor];
  else if (p.value <= 0.5) values = [p.value * factor, p.value / factor].filter((v) => v < 1);
  else values = [1 - (1 - p.value) / factor, 1 - (1 - p.value) * factor].filter((v) => v > 0);
  return [...new Set(values)].filter((v) => v !== p.value);
}

const SMALL_INT = 16; // integers below it move to their neighbours; larger ones along a log grid, as floats do
const GRID_SPAN = 4; // a float's grid runs from ÷4 to ×4

/**
 * `points` values around p, p's own among them: its integer neighbours (below SMALL_INT), else log-spaced
 * factors from ÷4 to ×4, a fraction in (0,1) scaled as `steps` scales it so it never leaves (0,1).
 */
export function gridOf(p: Hyperparameter, points: number): number[] {
  const half = Math.floor(points / 2);
  const offsets = Array.from({ length: points }, (_, i) => i - (points - 1) / 2);
  let values: number[];
  if (p.isInt && p.value < SMALL_INT) {
    values = Array.from({ length: 2 * half + 1 }, (_, i) => p.value - half + i).filter((v) => v >= 1);
  } else {
    const factors = offsets.map((o) => GRID_SPAN ** (half ? o / ((points - 1) / 2) : 0));
    if (p.isInt) values = factors.map((f) => Math.max(1, Math.round(p.value * f)));
    else if (p.value >= 1 || p.value <= 0.5) values = factors.map((f) => p.value * f).filter((v) => p.value >= 1 || v < 1);
    else values = factors.map((f) => 1 - (1 - p.value) / f).filter((v) => v > 0);
  }
  return [...new Set([...values, p.value])].sort((a, b) => a - b);
}

const SWITCH = /^([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*(True|False)[ \t]*(?=#|$)/gm;

/** Every knob of `source` with its grid of `points` values (both values for a switch). */
export function findKnobs(source: string, points: number): Knob[] {
  const numeric = findHyperparameters(source).map((p): Knob => ({
    name: p.name, literal: p.literal, start: p.start,
    grid: gridOf(p, points).map((v) => (v === p.value ? p.literal : formatValue(v, p.isInt))),
  }));
  const switches = [...source.matchAll(SWITCH)].map((m): Knob => ({
    name: m[1], literal: m[2], start: m.index! + m[0].lastIndexOf(m[2]), grid: ['False', 'True'],
  }));
  return [...numeric, ...switches].sort((a, b) => a.start - b.start);
}

/** Short, Python-readable, and still the value meant: a fraction never rounds to 0 or 1. */
export function formatValue(value: number, isInt: boolean): string {
  if (isInt) return String(value);
  let text = String(value);
  for (let digits = 6; digits < 17; digits++) {
    const rounded = Number(value.toPrecision(digits));
    if (value < 1 && (rounded <= 0 || rounded >= 1)) continue;
    text = String(rounded);
    break;
  }
  return /[.e]/.test(text) ? text : text + '.0';
}

/** A small seeded PRNG (mulberry32): the same run replays the same choices. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function occurrences(text: string, part: string): number {
  let count = 0;
  for (let at = text.indexOf(part); at !== -1; at = text.indexOf(part, at + 1)) count++;
  return count;
}

/**
 * The search/replace that turns `source` into `content`, where they differ in [start, end) of
 * `source`: the whole lines around it, widened by a line at a time until the search text is unique.
 */
export function lineEdit(source: string, content: string, start: number, end: number): { search: string; replace: string } {
  let from = source.lastIndexOf('\n', start - 1) + 1;
  let to = source.indexOf('\n', end);
  if (to === -1) to = source.length;
  while (occurrences(source, source.slice(from, to)) > 1) {
    if (from > 0) from = from === 1 ? 0 : source.lastIndexOf('\n', from - 2) + 1;
    else if (to < source.length) to = source.indexOf('\n', to + 1) === -1 ? source.length : source.indexOf('\n', to + 1);
    else break;
  }
  const grown = content.length - source.length;
  return { search: source.slice(from, to), replace: content.slice(from, to + grown) };
}

/**
 * One untried single-parameter change of `source`, or null when every change in reach was tried.
 * `tried` holds git blob ids of this file in every candidate so far.
 */
export function proposeSweep(source: string, seed: number, n: number, tried: Set<string>): SweepChange | null {
  const params = findHyperparameters(source);
  const next = random(seed * 1_000_003 + n);
  for (const factor of FACTORS) {
    const options = params.flatMap((p) => steps(p, factor).map((value) => ({ p, value })));
    for (const { p, value } of shuffled(options, next)) {
      const literal = formatValue(value, p.isInt);
      if (Number(literal) === p.value) continue;
      const content = source.slice(0, p.start) + literal + source.slice(p.start + p.literal.length);
      if (tried.has(gitBlobId(Buffer.from(content)))) continue;
      const description = `${p.name} ${p.literal} -> ${literal}`;
      const edit = lineEdit(source, content, p.start, p.start + p.literal.length);
      return { description, change: description, content, edit };
    }
  }
  return null;
}
