// The pure parts of the answer protocol, called directly: what really changed, setting constants by name, the
// closest lines shown for an absent search, and the checker that stops code which cannot run (real Python, pyflakes).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  InvalidAnswer,
  applySet,
  checkerPython,
  closestLines,
  describeChange,
  parseAnswer,
  pythonLiteral,
  validateCandidate,
} from '../activities/edits';

const TRAIN = [
  'import math',
  '',
  'LEARNING_RATE = 0.006  # peak AdamW step size',
  'BATCH_SIZE = 512  # positions per step',
  "ACTIVATION = 'relu'  # hidden nonlinearity",
  'USE_BIAS = True',
  '',
  '',
  'def lr_at(progress):',
  '    return LEARNING_RATE * progress',
  '',
].join('\n');

const rejects = (fn: () => unknown, reason: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof InvalidAnswer && reason.test(err.message));

describe('describeChange', () => {
  test('names each changed top-level constant with its old and new value', () => {
    const after = TRAIN.replace('LEARNING_RATE = 0.006', 'LEARNING_RATE = 0.03').replace(
      'BATCH_SIZE = 512',
      'BATCH_SIZE = 256',
    );
    assert.equal(
      describeChange({ 'train.py': TRAIN }, { 'train.py': after }),
      'LEARNING_RATE 0.006 -> 0.03, BATCH_SIZE 512 -> 256',
    );
  });

  test('a rewritten definition is not a constant change: the diff size and its first lines are shown', () => {
    const after = TRAIN.replace('LEARNING_RATE = 0.006', 'LEARNING_RATE *= 1.5');
    assert.equal(
      describeChange({ 'train.py': TRAIN }, { 'train.py': after }),
      'train.py +1 -1 lines: -LEARNING_RATE = 0.006  # peak AdamW step size +LEARNING_RATE *= 1.5  # peak AdamW step size',
    );
  });

  test('a comment-only change on a constant line is a diff, not a value change', () => {
    const after = TRAIN.replace('# peak AdamW step size', '# the peak');
    assert.match(describeChange({ 'train.py': TRAIN }, { 'train.py': after }), /^train\.py \+1 -1 lines/);
  });

  test('an added function counts only the lines it adds, however far apart the changes are', () => {
    const after =
      TRAIN.replace('import math\n', 'import math\nimport os\n') + '\ndef cosine(p):\n    return math.cos(p)\n';
    assert.equal(describeChange({ 'train.py': TRAIN }, { 'train.py': after }), 'train.py +4 -0 lines: +import os');
  });

  test('stays within about 200 characters for a whole-file rewrite', () => {
    const after = Array.from({ length: 500 }, (_, i) => `LINE_${i} = ${'x'.repeat(50)}`).join('\n');
    const change = describeChange({ 'train.py': TRAIN }, { 'train.py': after });
    assert.ok(change.length <= 200, `${change.length} chars`);
    assert.match(change, /^train\.py \+500 -11 lines/);
  });
});

describe('"set"', () => {
  test('replaces the literal of a top-level constant, keeping its comment, and returns the equivalent edit', () => {
    const { files, edits } = applySet(
      { 'train.py': TRAIN },
      { LEARNING_RATE: 0.009, ACTIVATION: 'gelu', USE_BIAS: false },
      ['train.py'],
    );
    assert.match(files['train.py'], /^LEARNING_RATE = 0\.009  # peak AdamW step size$/m);
    assert.match(files['train.py'], /^ACTIVATION = 'gelu'  # hidden nonlinearity$/m);
    assert.match(files['train.py'], /^USE_BIAS = False$/m);
    assert.deepEqual(edits[0], {
      path: 'train.py',
      search: 'LEARNING_RATE = 0.006  # peak AdamW step size',
      replace: 'LEARNING_RATE = 0.009  # peak AdamW step size',
    });
    assert.equal(edits.length, 3);
  });

  test('writes Python literals of the same kind: a float stays a float, a quoted number becomes a number', () => {
    assert.equal(pythonLiteral('LR', '0.006', 1), '1.0');
    assert.equal(pythonLiteral('LR', '0.006', '0.01'), '0.01');
    assert.equal(pythonLiteral('LR', '0.006', 1e-7), '1e-7');
    assert.equal(pythonLiteral('N', '512', 384), '384');
    assert.equal(pythonLiteral('S', '"a"', 'it\'s "b"'), '"it\'s \\"b\\""');
    assert.equal(pythonLiteral('S', "'a'", "it's"), "'it\\'s'");
  });

  test('refuses a name that is not a top-level constant, listing the ones there are', () => {
    rejects(
      () => applySet({ 'train.py': TRAIN }, { progress: 1 }, ['train.py']),
      /"set": progress is not a top-level constant .*; the constants are LEARNING_RATE, BATCH_SIZE, ACTIVATION, USE_BIAS$/,
    );
  });

  test('refuses a constant assigned twice at top level: which one was meant is unclear', () => {
    rejects(
      () => applySet({ 'train.py': `${TRAIN}BATCH_SIZE = 64\n` }, { BATCH_SIZE: 128 }, ['train.py']),
      /assigned 2 times at top level \(train\.py line 4, train\.py line 11\)/,
    );
  });

  test('refuses a value of another kind, and one that is not finite', () => {
    rejects(
      () => applySet({ 'train.py': TRAIN }, { USE_BIAS: 1 }, ['train.py']),
      /USE_BIAS is a boolean \(True\), so its new value must be a boolean, not 1/,
    );
    rejects(
      () => parseAnswer('{"description": "x", "set": {"LEARNING_RATE": null}, "edits": []}'),
      /the value of LEARNING_RATE must be a finite number/,
    );
  });

  test('an answer may carry "set" alone, "edits" alone, or both', () => {
    assert.deepEqual(parseAnswer('{"description": "x", "set": {"LEARNING_RATE": 0.009}}').set, {
      LEARNING_RATE: 0.009,
    });
    assert.deepEqual(
      parseAnswer('{"description": "x", "edits": [{"path": "a", "search": "b", "replace": "c"}]}').set,
      {},
    );
    rejects(() => parseAnswer('{"description": "x", "set": {}, "edits": []}'), /both empty/);
  });
});

test('the lines closest to an absent search text come best first, numbered as in an editor', () => {
  assert.deepEqual(closestLines(TRAIN, 'LEARNING_RATE *= 1.5\nmore'), [
    { line: 3, text: 'LEARNING_RATE = 0.006  # peak AdamW step size' },
    { line: 10, text: '    return LEARNING_RATE * progress' },
    { line: 4, text: 'BATCH_SIZE = 512  # positions per step' },
  ]);
});

describe('validateCandidate (real Python)', () => {
  test('pyflakes is installed where the proposals are checked', () => {
    assert.equal(
      checkerPython()?.pyflakes,
      true,
      'npx autoresearch provision installs pyflakes into the Python environment',
    );
  });

  const check = (after: string) => validateCandidate({ 'train.py': TRAIN }, { 'train.py': after });
  const refuses = (checking: Promise<void>, reason: RegExp) =>
    assert.rejects(checking, (err: unknown) => err instanceof InvalidAnswer && reason.test(err.message));

  test('refuses a name used but never defined, quoting the line', async () => {
    await refuses(
      check(TRAIN.replace('LEARNING_RATE = 0.006', 'LEARNING_RATE *= 1.5')),
      /train\.py would fail when run \(pyflakes\): line 3 "LEARNING_RATE \*= 1\.5  # peak AdamW step size": undefined name 'LEARNING_RATE'/,
    );
  });

  test('refuses what only the compiler sees, such as a return outside a function', async () => {
    await refuses(check(`${TRAIN}return 1\n`), /train\.py does not parse as Python: line 11: 'return' outside function/);
  });

  test('lets style findings through: an unused import does not stop a training', async () => {
    await assert.doesNotReject(check(TRAIN.replace('import math', 'import math\nimport os')));
  });

  test("lets through a finding the best version already had: it is not the candidate's doing", async () => {
    const before = `${TRAIN}print(UNDEFINED_BEFORE)\n`;
    await assert.doesNotReject(
      validateCandidate({ 'train.py': before }, { 'train.py': before.replace('0.006', '0.009') }),
    );
  });

  test('checks only Python files that changed', async () => {
    await assert.doesNotReject(validateCandidate({ 'notes.txt': 'a' }, { 'notes.txt': 'b = (' }));
    const broken = 'x = (';
    await assert.doesNotReject(validateCandidate({ 'train.py': broken }, { 'train.py': broken }));
  });
});
