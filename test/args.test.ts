// Flag parsing at the CLI's edge: every malformed value is one clear UserError naming the flag.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { nearest, parseCount, parseDuration, parseFlags, parseNumber, parseTag, parseUntil } from '../scripts/args';
import { UserError } from '../scripts/errors';
import { BRANCH_PREFIX, CANDIDATE_REF_PREFIX, experimentId, experimentWorkflowId, morningWorkflowId, workflowIdFor } from '../workflows/types';

/** Asserts that `work` throws a UserError whose one-line message matches every pattern. */
function userError(work: () => unknown, ...patterns: RegExp[]): string {
  let caught: unknown;
  try {
    work();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  assert.equal(caught.name, 'UserError');
  assert.ok(!caught.message.includes('\n'), `one line: ${JSON.stringify(caught.message)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught.message;
}

describe('parseDuration', () => {
  test('accepts bare seconds, single units, combined units and fractions', () => {
    assert.equal(parseDuration('--timeout', '90'), 90_000);
    assert.equal(parseDuration('--timeout', '90s'), 90_000);
    assert.equal(parseDuration('--timeout', '5m'), 300_000);
    assert.equal(parseDuration('--timeout', '1h30m'), 5_400_000);
    assert.equal(parseDuration('--timeout', '1.5h'), 5_400_000);
    assert.equal(parseDuration('--timeout', '250ms'), 250);
    assert.equal(parseDuration('--timeout', ' 5m '), 300_000, 'surrounding spaces are trimmed');
  });

  test('rejects an unknown unit, naming the flag and the value', () => {
    userError(() => parseDuration('--timeout', '5q'), /^--timeout: /, /"5q"/, /not a duration/);
  });

  test('rejects an empty value', () => {
    userError(() => parseDuration('--budget', ''), /^--budget: /);
  });

  test('rejects zero, in any spelling', () => {
    userError(() => parseDuration('--timeout', '0'), /^--timeout: /, /longer than zero/);
    userError(() => parseDuration('--timeout', '0s'), /^--timeout: /, /longer than zero/);
    userError(() => parseDuration('--timeout', '0h0m'), /^--timeout: /);
  });

  test('rejects negative durations and stray text around a valid one', () => {
    userError(() => parseDuration('--timeout', '-3m'), /^--timeout: /, /"-3m"/);
    userError(() => parseDuration('--timeout', '5m later'), /^--timeout: /);
    userError(() => parseDuration('--timeout', 'm'), /^--timeout: /);
  });
});

describe('parseUntil', () => {
  // Local wall-clock times, so the expectations hold in any time zone (late November: no DST change).
  const local = (day: number, h: number, m: number) => new Date(2026, 10, day, h, m, 0, 0).getTime();

  test('a time of day later today means today', () => {
    assert.equal(parseUntil('07:30', local(27, 6, 0)), local(27, 7, 30));
  });

  test('a time of day already past means tomorrow', () => {
    assert.equal(parseUntil('07:30', local(27, 23, 15)), local(28, 7, 30));
  });

  test('the current minute itself means tomorrow, never now', () => {
    assert.equal(parseUntil('07:30', local(27, 7, 30)), local(28, 7, 30));
  });

  test('a one-digit hour is accepted', () => {
    assert.equal(parseUntil('7:05', local(27, 1, 0)), local(27, 7, 5));
  });

  test('an ISO date-time in the future is accepted as is', () => {
    const now = Date.parse('2026-11-27T12:00:00Z');
    assert.equal(parseUntil('2026-11-28T07:30:00Z', now), Date.parse('2026-11-28T07:30:00Z'));
  });

  test('an ISO date-time in the past is an error naming --until', () => {
    const now = Date.parse('2026-11-27T12:00:00Z');
    userError(() => parseUntil('2026-11-27T07:30:00Z', now), /^--until: /, /in the past/);
  });

  test('garbage and impossible clock times are errors naming --until', () => {
    userError(() => parseUntil('tomorrow-ish', local(27, 6, 0)), /^--until: /, /not a time/);
    userError(() => parseUntil('24:00', local(27, 6, 0)), /^--until: /, /not a time of day/);
    userError(() => parseUntil('07:60', local(27, 6, 0)), /^--until: /, /not a time of day/);
  });
});

describe('parseTag', () => {
  test('accepts letters, digits, dots, underscores and dashes', () => {
    assert.equal(parseTag('nov27'), 'nov27');
    assert.equal(parseTag('a.b_c-1'), 'a.b_c-1');
    assert.equal(parseTag('x'.repeat(64)), 'x'.repeat(64), '64 characters is the limit');
  });

  test('accepted tags make valid branch and ref names', () => {
    for (const tag of ['nov27', 'a.b_c-1', 'Run-2', 'x'.repeat(64)]) {
      parseTag(tag);
      execFileSync('git', ['check-ref-format', `refs/heads/${BRANCH_PREFIX}${tag}`]);
      execFileSync('git', ['check-ref-format', `${CANDIDATE_REF_PREFIX}${tag}/${tag}-12`]);
    }
  });

  test('a missing or empty tag is an error that shows an example', () => {
    userError(() => parseTag(undefined), /tag is required/, /--tag/);
    userError(() => parseTag(''), /tag is required/);
  });

  test('rejects path tricks, spaces, .lock endings and overlong tags', () => {
    for (const bad of ['../x', 'a/b', 'a b', 'x.lock', 'a.', 'a..b', '.hidden', '-flag', 'x'.repeat(65), 'tag~1', 'a:b']) {
      userError(() => parseTag(bad), /^tag "/, /letters, digits/);
    }
  });
});

describe('parseCount', () => {
  test('accepts whole numbers at or above the minimum', () => {
    assert.equal(parseCount('--parallel', '3'), 3);
    assert.equal(parseCount('--parallel', '1'), 1);
    assert.equal(parseCount('--max', '0', 0), 0);
  });

  test('rejects fractions, negatives, words and values below the minimum, naming the flag', () => {
    userError(() => parseCount('--parallel', '0'), /^--parallel: /, /≥ 1/);
    userError(() => parseCount('--parallel', '1.5'), /^--parallel: /);
    userError(() => parseCount('--parallel', '-2'), /^--parallel: /);
    userError(() => parseCount('--parallel', 'two'), /^--parallel: /);
    userError(() => parseCount('--parallel', ''), /^--parallel: /);
    userError(() => parseCount('--max', '4', 5), /^--max: /, /≥ 5/);
  });
});

describe('parseFlags', () => {
  const options = { tag: { type: 'string' as const }, dry: { type: 'boolean' as const } };

  test('returns the flags and positionals', () => {
    const { flags, positionals } = parseFlags('start', ['--tag', 'nov27', 'repo', '--dry'], options);
    assert.equal(flags.tag, 'nov27');
    assert.equal(flags.dry, true);
    assert.deepEqual(positionals, ['repo']);
  });

  test('an unknown flag is a UserError that starts with the verb and names the flag', () => {
    userError(() => parseFlags('start', ['--bogus'], options), /^start: /, /--bogus/);
  });

  test('a string flag without its value is a UserError that starts with the verb', () => {
    userError(() => parseFlags('stop', ['--tag'], options), /^stop: /, /--tag/);
  });

  test('a value given to a boolean flag is a UserError', () => {
    userError(() => parseFlags('status', ['--dry=yes'], options), /^status: /, /--dry/);
  });

  test('a mistyped flag names the flag that was meant', () => {
    userError(() => parseFlags('start', ['--tga', 'x'], options), /^start: Unknown option '--tga' \(did you mean --tag\?\)$/);
    userError(() => parseFlags('start', ['--dryrun'], options), /did you mean --dry\?/);
    userError(() => parseFlags('start', ['--colour'], options), /^start: Unknown option '--colour' \(see npx autoresearch start --help\)$/);
  });
});

describe('nearest', () => {
  const flags = ['max-experiments', 'max-tokens-total', 'max-proposer-failures', 'timeout', 'tag', 'repo'];

  test('finds a flag one or two edits away, or one the typed text begins or ends', () => {
    assert.equal(nearest('max-experiment', flags), 'max-experiments');
    assert.equal(nearest('max-experimnets', flags), 'max-experiments');
    assert.equal(nearest('timout', flags), 'timeout');
    assert.equal(nearest('tags', flags), 'tag');
    assert.equal(nearest('rep', flags), 'repo');
  });

  test('suggests nothing for a word that is far from every flag', () => {
    assert.equal(nearest('colour', flags), null);
    assert.equal(nearest('parallelism-level', flags), null);
  });
});

describe('parseNumber', () => {
  test('accepts numbers inside the range, and names the range when outside it', () => {
    assert.equal(parseNumber('--temperature', '0.7', 0, 2), 0.7);
    assert.equal(parseNumber('--temperature', '2', 0, 2), 2);
    userError(() => parseNumber('--temperature', '2.1', 0, 2), /^--temperature: "2.1" is not a number from 0 to 2$/);
    userError(() => parseNumber('--min-improvement', '-1'), /^--min-improvement: "-1" is not a number ≥ 0$/);
  });
});

test('no tag\'s workflow ids collide with another\'s: a study, its experiments and its morning workflows', () => {
  const ids = (tag: string) => [workflowIdFor(tag), ...[0, 3, 12].map((n) => experimentWorkflowId(experimentId(tag, n))), morningWorkflowId(tag, 'verify'), morningWorkflowId(tag, 'ablate')];
  const tags = ['nov27', 'nov27-3', 'nov27-12', 'nov27.verify', 'nov27.ablate', 'nov27-0'].map(parseTag);
  const all = tags.flatMap(ids);
  assert.equal(new Set(all).size, all.length, all.join(' '));
  assert.equal(experimentWorkflowId(experimentId('nov27-3', 12)), 'autoresearch-nov27-3/12');
});
