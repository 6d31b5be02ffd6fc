// The offline proposer: which constants it sees, how it steps them, and that it never repeats itself.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitBlobId } from '../activities/harness';
import { findHyperparameters, formatValue, proposeSweep, steps, type Hyperparameter } from '../activities/sweep';

const SOURCE = [
  'import os',
  '',
  'LR = 0.1  # learning rate',
  'BATCH_SIZE = 32',
  'DEPTH=4# layers',
  'WARMUP_STEPS = 1_000',
  'SCALE = 2.5',
  'EPS = 1e-8',
  'lowercase = 5',
  'Mixed_Case = 6',
  'NAME = "model"',
  'TUPLE = (1, 2)',
  'ZERO = 0',
  'ZERO_FLOAT = 0.0',
  'NEGATIVE = -3',
  'EXPR = 2 * 3',
  'def f():',
  '    INDENTED = 4',
  '    return INDENTED',
  '',
].join('\n');

const TINY_TRAIN = readFileSync(join(__dirname, '..', 'gpu-worker', 'targets', 'tiny', 'train.py'), 'utf8');

function param(name: string, source = SOURCE): Hyperparameter {
  const p = findHyperparameters(source).find((h) => h.name === name);
  assert.ok(p, `${name} should be found`);
  return p;
}

function changedLines(before: string, after: string): Array<[string, string]> {
  const a = before.split('\n');
  const b = after.split('\n');
  assert.equal(b.length, a.length, 'a proposal keeps the number of lines');
  return a.flatMap((line, i) => (line === b[i] ? [] : [[line, b[i]] as [string, string]]));
}

/** Every proposal from `source` until the sweep reports exhaustion, checking none repeats. */
function exhaust(source: string, seed: number): string[] {
  const tried = new Set<string>([gitBlobId(Buffer.from(source))]);
  const contents: string[] = [];
  for (let n = 1; n < 10_000; n++) {
    const change = proposeSweep(source, seed, n, tried);
    if (change === null) return contents;
    const blob = gitBlobId(Buffer.from(change.content));
    assert.ok(!tried.has(blob), `proposal ${n} (${change.description}) repeats a tried configuration`);
    tried.add(blob);
    contents.push(change.content);
  }
  assert.fail('the sweep never reported exhaustion');
}

describe('findHyperparameters', () => {
  test('finds top-level UPPER_CASE = number assignments, with or without trailing comments', () => {
    const names = findHyperparameters(SOURCE).map((p) => p.name);
    assert.deepEqual(names, ['LR', 'BATCH_SIZE', 'DEPTH', 'WARMUP_STEPS', 'SCALE', 'EPS']);
  });

  test('ignores lowercase names, indented lines, strings, expressions, zero and negative values', () => {
    const names = new Set(findHyperparameters(SOURCE).map((p) => p.name));
    for (const ignored of ['lowercase', 'Mixed_Case', 'INDENTED', 'NAME', 'TUPLE', 'ZERO', 'ZERO_FLOAT', 'NEGATIVE', 'EXPR']) {
      assert.ok(!names.has(ignored), `${ignored} must not be a hyperparameter`);
    }
  });

  test('reports the literal, its value, whether it is an int, and where the literal starts', () => {
    for (const p of findHyperparameters(SOURCE)) {
      assert.equal(SOURCE.slice(p.start, p.start + p.literal.length), p.literal, `${p.name}: start points at the literal`);
    }
    assert.deepEqual(
      findHyperparameters(SOURCE).map(({ name, literal, value, isInt }) => ({ name, literal, value, isInt })),
      [
        { name: 'LR', literal: '0.1', value: 0.1, isInt: false },
        { name: 'BATCH_SIZE', literal: '32', value: 32, isInt: true },
        { name: 'DEPTH', literal: '4', value: 4, isInt: true },
        { name: 'WARMUP_STEPS', literal: '1_000', value: 1000, isInt: true },
        { name: 'SCALE', literal: '2.5', value: 2.5, isInt: false },
        { name: 'EPS', literal: '1e-8', value: 1e-8, isInt: false },
      ],
    );
  });

  test('a digit in the name does not confuse the literal offset', () => {
    const source = 'X = 1\nLAYER2 = 2\n';
    const p = param('LAYER2', source);
    assert.equal(p.start, source.indexOf('= 2') + 2);
  });

  test('finds every constant of the shipped tiny target', () => {
    const names = findHyperparameters(TINY_TRAIN).map((p) => p.name);
    assert.ok(names.includes('LEARNING_RATE') && names.includes('BATCH_SIZE') && names.includes('BETA2'), names.join(','));
    assert.ok(!names.includes('seed'), 'the lowercase seed is not a hyperparameter');
  });
});

describe('steps', () => {
  test('ints never go below 1', () => {
    for (const value of [1, 2, 3, 5, 7]) {
      const p: Hyperparameter = { name: 'N', literal: String(value), value, isInt: true, start: 0 };
      for (const factor of [2, 4, 8]) {
        for (const v of steps(p, factor)) {
          assert.ok(Number.isInteger(v) && v >= 1, `${value} /${factor} gave ${v}`);
          assert.notEqual(v, value);
        }
      }
    }
    assert.deepEqual(steps(param('DEPTH'), 8), [32, 1]);
    assert.deepEqual(steps({ name: 'N', literal: '1', value: 1, isInt: true, start: 0 }, 2), [2], 'the step down from 1 is dropped, not 0');
  });

  test('fractions in (0,1) stay in (0,1)', () => {
    for (const value of [0.001, 0.1, 0.3, 0.5, 0.6, 0.9, 0.99, 0.999]) {
      const p: Hyperparameter = { name: 'F', literal: String(value), value, isInt: false, start: 0 };
      for (const factor of [2, 4, 8]) {
        const values = steps(p, factor);
        assert.ok(values.length >= 1, `${value} has a step at factor ${factor}`);
        for (const v of values) {
          assert.ok(v > 0 && v < 1, `${value} with factor ${factor} gave ${v}`);
          const written = Number(formatValue(v, false));
          assert.ok(written > 0 && written < 1, `${value} with factor ${factor} is written as ${written}`);
        }
      }
    }
    assert.deepEqual(steps(param('LR'), 2), [0.2, 0.05]);
  });

  test('a small fraction moves by the factor, never halfway to 1', () => {
    const decay: Hyperparameter = { name: 'WEIGHT_DECAY', literal: '0.01', value: 0.01, isInt: false, start: 0 };
    assert.deepEqual(steps(decay, 2), [0.02, 0.005]);
    assert.deepEqual(steps(decay, 8), [0.08, 0.00125]);
    const half: Hyperparameter = { name: 'P', literal: '0.5', value: 0.5, isInt: false, start: 0 };
    assert.deepEqual(steps(half, 2), [0.25], 'the step up to 1 is dropped');
  });

  test('a fraction close to 1 moves its distance to 1 by the factor', () => {
    const beta2: Hyperparameter = { name: 'BETA2', literal: '0.99', value: 0.99, isInt: false, start: 0 };
    assert.deepEqual(steps(beta2, 2).map((v) => Number(v.toFixed(6))), [0.995, 0.98]);
    const beta1: Hyperparameter = { name: 'BETA1', literal: '0.9', value: 0.9, isInt: false, start: 0 };
    assert.deepEqual(steps(beta1, 2).map((v) => Number(v.toFixed(6))), [0.95, 0.8]);
    assert.deepEqual(steps(beta1, 4).map((v) => Number(v.toFixed(6))), [0.975, 0.6]);
    const p6: Hyperparameter = { name: 'P', literal: '0.6', value: 0.6, isInt: false, start: 0 };
    assert.deepEqual(steps(p6, 4).map((v) => Number(v.toFixed(6))), [0.9], 'a step past 0 is dropped');
  });

  test('every proposal for the tiny target stays within the largest factor of its value (or of its distance to 1)', () => {
    const before = new Map(findHyperparameters(TINY_TRAIN).map((p) => [p.name, p.value]));
    const tried = new Set([gitBlobId(Buffer.from(TINY_TRAIN))]);
    for (let n = 1; n <= 200; n++) {
      const change = proposeSweep(TINY_TRAIN, 4, n, tried);
      if (!change) break;
      tried.add(gitBlobId(Buffer.from(change.content)));
      const [name, , , to] = change.description.split(' ');
      const [from, value] = [before.get(name)!, Number(to)];
      const ratio = from > 0.5 && from < 1 ? (1 - value) / (1 - from) : value / from;
      assert.ok(ratio >= 1 / 8 - 1e-9 && ratio <= 8 + 1e-9, `${change.description}: a ${ratio.toFixed(3)}x step`);
    }
  });

  test('floats of 1 and above scale up and down by the factor', () => {
    assert.deepEqual(steps(param('SCALE'), 2), [5, 1.25]);
    assert.deepEqual(steps(param('SCALE'), 4), [10, 0.625]);
  });
});

describe('formatValue', () => {
  test('floats keep a decimal point so Python still reads a float', () => {
    assert.equal(formatValue(5, false), '5.0');
    assert.equal(formatValue(0.05, false), '0.05');
    assert.equal(formatValue(1.25e-9, false), '1.25e-9');
    assert.equal(formatValue(0.1 * 3, false), '0.3', 'rounded to six significant digits');
  });

  test('a fraction near 1 is never rounded onto 1, and a step never rounds back to the value it left', () => {
    assert.equal(formatValue(1 - 1e-7, false), '0.9999999');
    const p = findHyperparameters('BETA2 = 0.999999  # second moment\n')[0];
    const change = proposeSweep('BETA2 = 0.999999  # second moment\n', 1, 2, new Set());
    assert.ok(change, 'a change is proposed');
    const literal = /-> (\S+)/.exec(change.description)![1];
    assert.ok(Number(literal) > 0 && Number(literal) < 1 && Number(literal) !== p.value, change.description);
  });

  test('ints are written as plain integers', () => {
    assert.equal(formatValue(64, true), '64');
    assert.equal(formatValue(1, true), '1');
  });
});

describe('proposeSweep', () => {
  test('is deterministic for the same seed, experiment number and tried set', () => {
    for (let n = 1; n <= 10; n++) {
      const tried = new Set([gitBlobId(Buffer.from(SOURCE))]);
      assert.deepEqual(proposeSweep(SOURCE, 42, n, tried), proposeSweep(SOURCE, 42, n, new Set(tried)));
    }
  });

  test('often proposes something different for a different experiment number', () => {
    const descriptions = new Set<string>();
    for (let n = 1; n <= 20; n++) descriptions.add(proposeSweep(SOURCE, 7, n, new Set())!.description);
    assert.ok(descriptions.size >= 5, `only ${descriptions.size} distinct first proposals over 20 experiment numbers`);
  });

  test('changes exactly one line, the one of the named constant, and nothing else', () => {
    for (let n = 1; n <= 30; n++) {
      const change = proposeSweep(SOURCE, 3, n, new Set())!;
      const diff = changedLines(SOURCE, change.content);
      assert.equal(diff.length, 1, `${change.description}: ${JSON.stringify(diff)}`);
      const [name, from, arrow, to] = change.description.split(' ');
      assert.equal(arrow, '->');
      const [before, after] = diff[0];
      assert.ok(before.startsWith(name) && after.startsWith(name), `${change.description} changed ${before}`);
      assert.equal(after, before.replace(from, to), 'only the literal changes; the comment stays');
      assert.ok(findHyperparameters(change.content).some((p) => p.name === name && p.literal === to));
    }
  });

  test('never returns a configuration whose blob id is in tried', () => {
    const first = proposeSweep(SOURCE, 11, 1, new Set())!;
    const tried = new Set([gitBlobId(Buffer.from(first.content))]);
    const second = proposeSweep(SOURCE, 11, 1, tried)!;
    assert.notEqual(second.content, first.content, 'the same (seed, n) moves on when its first choice was tried');
    assert.ok(!tried.has(gitBlobId(Buffer.from(second.content))));
  });

  test('runs through every reachable step without repeating, then returns null', () => {
    const small = 'LR = 0.1  # learning rate\nDEPTH = 4\n';
    const contents = exhaust(small, 5);
    // LR: 0.2 0.05 0.4 0.025 0.8 0.0125; DEPTH: 8 2 16 1 32 (the 1 from /8 is a duplicate).
    assert.equal(contents.length, 11);
    assert.equal(new Set(contents).size, contents.length);
    assert.equal(proposeSweep(small, 5, 999, new Set([small, ...contents].map((c) => gitBlobId(Buffer.from(c))))), null);
  });

  test('exhausts the shipped tiny target without repeating, for several seeds', () => {
    const params = findHyperparameters(TINY_TRAIN).length;
    for (const seed of [0, 1, 123456]) {
      const contents = exhaust(TINY_TRAIN, seed);
      assert.ok(contents.length > params * 3 && contents.length <= params * 6, `${contents.length} proposals for ${params} constants`);
    }
  });

  test('returns the change and a search/replace edit that re-applies it to the file', () => {
    for (let n = 1; n <= 30; n++) {
      const change = proposeSweep(SOURCE, 13, n, new Set())!;
      assert.equal(change.change, change.description);
      const { search, replace } = change.edit;
      assert.equal(SOURCE.split(search).length, 2, `${change.description}: the search text occurs once`);
      assert.equal(SOURCE.replace(search, () => replace), change.content);
      assert.ok(!search.includes('\n'), 'one line is enough when the line is unique');
    }
  });

  test('the edit widens to neighbouring lines when the changed line occurs twice', () => {
    const source = 'A = 2\nB = 1\nA = 2\n';
    for (let n = 1; n <= 10; n++) {
      const change = proposeSweep(source, 1, n, new Set())!;
      const { search, replace } = change.edit;
      let count = 0;
      for (let at = source.indexOf(search); at !== -1; at = source.indexOf(search, at + 1)) count++;
      assert.equal(count, 1, `${change.description}: ${JSON.stringify(search)} is unique`);
      assert.equal(source.replace(search, () => replace), change.content);
    }
  });

  test('returns null when the source has no hyperparameters', () => {
    assert.equal(proposeSweep('lr = 0.1\n', 1, 1, new Set()), null);
  });

  test('every proposal still parses as Python', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-test-'));
    try {
      const contents = [...exhaust(SOURCE, 9), ...exhaust(TINY_TRAIN, 9).slice(0, 40)];
      // One python process for all of them: each file is parsed, and the first failure is reported.
      const files = contents.map((content, i) => {
        const file = join(dir, `candidate${i}.py`);
        writeFileSync(file, content);
        return file;
      });
      const script = 'import ast,sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\nprint(len(sys.argv) - 1)';
      const out = execFileSync('python3', ['-c', script, ...files], { encoding: 'utf8' });
      assert.equal(out.trim(), String(files.length));
      // And the spec's one-file form on one of them, for good measure.
      execFileSync('python3', ['-c', 'import ast,sys; ast.parse(open(sys.argv[1]).read())', files[0]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
