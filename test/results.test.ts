// The results files of a run, on real git repos: results/<tag>/ per run, the original's results.tsv
// left alone, bad lines tolerated and reported, retries that repair exactly what is missing, and the
// `results` and `report` verbs run as a user would.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { recordExperiment } from '../activities/index';
import {
  appendRecord, formatFixed, formatScore, jsonLine, readRecords, readRecordsChecked, resultsDir, TSV_HEADER, tsvRow,
} from '../activities/results';
import type { ExperimentRecord, RunConfig } from '../workflows/types';
import { cli, closeDevServer, devServer, gitIn } from './helpers';

const ORIGINAL_TSV = [
  TSV_HEADER,
  'a1b2c3d\t0.997900\t44.0\tkeep\tbaseline',
  'b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04',
  'c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation',
  'd4e5f6a\t0.000000\t0.0\tcrash\tdouble model width (OOM)',
].join('\n') + '\n';

function makeRepo(t: TestContext): string {
  const repo = mkdtempSync(join(tmpdir(), 'autoresearch-results-'));
  t.after(() => rmSync(repo, { recursive: true, force: true }));
  writeFileSync(join(repo, 'program.md'), '# research\n');
  writeFileSync(join(repo, 'train.py'), 'LR = 0.1\n');
  writeFileSync(join(repo, '.gitignore'), '__pycache__/\n');
  gitIn(repo, 'init', '--quiet', '--initial-branch=main');
  gitIn(repo, 'add', '--all');
  gitIn(repo, 'commit', '--quiet', '-m', 'research repo');
  return repo;
}

function record(tag: string, n: number, fields: Partial<ExperimentRecord> = {}): ExperimentRecord {
  return {
    id: `${tag}-${n}`,
    n,
    parent: null,
    commit: `${n.toString(16).padStart(7, '0')}${'f'.repeat(33)}`,
    description: n === 0 ? 'baseline' : `change ${n}`,
    status: n === 0 ? 'keep' : 'discard',
    reason: 'test',
    valBpb: 1 + n / 100,
    memoryGb: 1.5,
    metrics: {},
    proposer: n === 0 ? 'baseline' : 'sweep',
    tokens: 0,
    startedAt: '2026-11-27T22:00:00.000Z',
    finishedAt: '2026-11-27T22:05:00.000Z',
    trainingSeconds: 300,
    ...fields,
  };
}

const file = (repo: string, tag: string, name: string) => join(resultsDir(repo, tag), name);
const read = (path: string) => readFileSync(path, 'utf8');
const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const rowsOf = (tsv: string) => tsv.trimEnd().split('\n').slice(1);
const expectedTsv = (records: ExperimentRecord[]) => [TSV_HEADER, ...records.map(tsvRow)].join('\n') + '\n';

async function appendAll(repo: string, tag: string, records: ExperimentRecord[]): Promise<void> {
  for (const r of records) await appendRecord(repo, tag, r);
}

test("formatScore and formatFixed print exactly what Python's '%.6f' and '%.1f' print, whatever the size", () => {
  const values = [2.2e33, 1e300, 0.000001, 2.245927795715333e33, 1e21, 1 / 128, 0.0000005, 2.5e-7, -1e-9, -0, 5e-324,
    1.7976931348623157e308, 0.9979, 123456789.1234565, 44.05, 0.25, 0.35];
  const python = execFileSync('python3', ['-c', [
    'import sys',
    'for x in sys.argv[1:]: print("%.6f %.1f" % (float(x), float(x)))',
  ].join('\n'), ...values.map((v) => (Object.is(v, -0) ? '-0.0' : String(v)))], { encoding: 'utf8' }).trimEnd().split('\n');
  assert.deepEqual(values.map((v) => `${formatScore(v)} ${formatFixed(v, 1)}`), python);
  assert.equal(formatScore(null), '0.000000', 'no score reads as the original writes a crash');
});

describe('results/<tag>/ in the research repo', { concurrency: true }, () => {
  test("a repo with the original's results.tsv of K rows gets its own per-tag files, the original untouched and uncounted", async (t) => {
    const repo = makeRepo(t);
    writeFileSync(join(repo, 'results.tsv'), ORIGINAL_TSV);
    const before = digest(join(repo, 'results.tsv'));
    const records = [0, 1, 2].map((n) => record('nov27', n));
    await appendAll(repo, 'nov27', records);
    assert.equal(digest(join(repo, 'results.tsv')), before, "the original's file is byte for byte the same");
    assert.equal(read(file(repo, 'nov27', 'results.tsv')), expectedTsv(records), 'a row for each of the first K experiments');
    assert.deepEqual((await readRecords(repo, 'nov27')).map((r) => r.id), ['nov27-0', 'nov27-1', 'nov27-2']);
  });

  test("the results stay out of git status, through info/exclude, and the user's .gitignore is not touched", async (t) => {
    const repo = makeRepo(t);
    const gitignore = digest(join(repo, '.gitignore'));
    await appendAll(repo, 'nov27', [0, 1, 2].map((n) => record('nov27', n)));
    await appendAll(repo, 'dec01', [record('dec01', 0)]);
    assert.equal(gitIn(repo, 'status', '--porcelain', '--untracked-files=all'), '', 'the repo is clean');
    assert.equal(digest(join(repo, '.gitignore')), gitignore);
    const exclude = read(join(repo, '.git', 'info', 'exclude')).split('\n');
    const lines = exclude.filter((l) => l.startsWith('/results/'));
    assert.deepEqual(lines, ['/results/nov27/', '/results/dec01/'], 'one line per tag, once');
    // Other untracked files of the user still show.
    writeFileSync(join(repo, 'notes.txt'), 'mine\n');
    assert.equal(gitIn(repo, 'status', '--porcelain', '--untracked-files=all'), '?? notes.txt');
  });

  test('two tags on one repo never interleave, whatever the order their experiments finish in', async (t) => {
    const repo = makeRepo(t);
    const a = [0, 1, 2, 3].map((n) => record('a', n));
    const b = [0, 1, 2].map((n) => record('b', n, { valBpb: 2 + n / 10 }));
    await Promise.all([appendAll(repo, 'a', a), appendAll(repo, 'b', b)]);
    assert.equal(read(file(repo, 'a', 'results.tsv')), expectedTsv(a));
    assert.equal(read(file(repo, 'b', 'results.tsv')), expectedTsv(b));
    assert.deepEqual((await readRecords(repo, 'b')).map((r) => r.id), ['b-0', 'b-1', 'b-2']);
  });

  test('experiments of one run recorded at the same moment each get exactly one line in both files', async (t) => {
    const repo = makeRepo(t);
    const records = [0, 1, 2, 3, 4, 5].map((n) => record('p', n));
    await Promise.all([...records, ...records].map((r) => appendRecord(repo, 'p', r)));
    const jsonl = read(file(repo, 'p', 'results.jsonl')).trimEnd().split('\n');
    assert.equal(jsonl.length, records.length);
    assert.deepEqual(jsonl.map((l) => JSON.parse(l).id).sort(), records.map((r) => r.id).sort());
    const tsv = rowsOf(read(file(repo, 'p', 'results.tsv')));
    assert.deepEqual(tsv, jsonl.map((l) => tsvRow(JSON.parse(l))), 'the tsv follows the jsonl, row for row');
  });

  test('a torn jsonl line is skipped and reported, left as it was, and the next record starts on a line of its own', async (t) => {
    const repo = makeRepo(t);
    const [r0, r1, r2] = [0, 1, 2].map((n) => record('t', n));
    await appendRecord(repo, 't', r0);
    const torn = jsonLine(r1).slice(0, 40); // the worker died mid-write
    appendFileSync(file(repo, 't', 'results.jsonl'), torn);
    const checked = await readRecordsChecked(repo, 't');
    assert.deepEqual(checked.records.map((r) => r.id), ['t-0']);
    assert.deepEqual(checked.bad, [{ line: 2, text: torn, why: 'not valid JSON (a torn or hand-edited line)' }]);

    await appendRecord(repo, 't', r1);
    await appendRecord(repo, 't', r2);
    const lines = read(file(repo, 't', 'results.jsonl')).split('\n');
    assert.deepEqual(lines, [jsonLine(r0), torn, jsonLine(r1), jsonLine(r2), '']);
    assert.deepEqual((await readRecords(repo, 't')).map((r) => r.id), ['t-0', 't-1', 't-2']);
    assert.equal(read(file(repo, 't', 'results.tsv')), expectedTsv([r0, r1, r2]));
  });

  test('a hand-edited line that is JSON but not a record, and a repeated id, are reported by line number', async (t) => {
    const repo = makeRepo(t);
    const [r0, r1] = [0, 1].map((n) => record('h', n));
    await appendAll(repo, 'h', [r0, r1]);
    const again = jsonLine({ ...r0, description: 'again' });
    appendFileSync(file(repo, 'h', 'results.jsonl'), `{"note": "checked by hand"}\n${again}\n\n[1, 2]\n`);
    const { records, bad } = await readRecordsChecked(repo, 'h');
    assert.deepEqual(records.map((r) => r.description), ['baseline', 'change 1']);
    const found = bad.map((b) => [b.line, b.why]);
    assert.deepEqual(found, [[3, 'no id'], [4, 'repeats experiment h-0'], [6, 'not a JSON object']]);
    await appendRecord(repo, 'h', record('h', 2));
    assert.deepEqual(rowsOf(read(file(repo, 'h', 'results.tsv'))), [r0, r1, record('h', 2)].map(tsvRow));
  });

  test('a crash between the jsonl append and the tsv write is repaired exactly once on retry', async (t) => {
    const repo = makeRepo(t);
    const [r0, r1] = [0, 1].map((n) => record('c', n));
    await appendRecord(repo, 'c', r0);
    const tsvBefore = read(file(repo, 'c', 'results.tsv'));
    appendFileSync(file(repo, 'c', 'results.jsonl'), jsonLine(r1) + '\n'); // the first write of r1, then the crash
    assert.equal(read(file(repo, 'c', 'results.tsv')), tsvBefore);
    await appendRecord(repo, 'c', r1);
    const [tsv, jsonl] = [read(file(repo, 'c', 'results.tsv')), read(file(repo, 'c', 'results.jsonl'))];
    assert.equal(tsv, expectedTsv([r0, r1]));
    assert.equal(jsonl, `${jsonLine(r0)}\n${jsonLine(r1)}\n`);
    await appendRecord(repo, 'c', r1);
    const after = [read(file(repo, 'c', 'results.tsv')), read(file(repo, 'c', 'results.jsonl'))];
    assert.deepEqual(after, [tsv, jsonl], 'a further retry adds nothing');
    assert.ok(!existsSync(file(repo, 'c', 'results.tsv.edited')), 'a lagging tsv is not a hand edit');
  });

  test('a hand-edited tsv does not shift later rows onto the wrong experiment, and the edit is kept aside', async (t) => {
    const repo = makeRepo(t);
    const records = [0, 1, 2, 3].map((n) => record('e', n));
    await appendAll(repo, 'e', records.slice(0, 3));
    const lines = read(file(repo, 'e', 'results.tsv')).trimEnd().split('\n');
    const edited = [lines[0], lines[1], lines[3], '# e-1 was a fluke, row deleted'].join('\n') + '\n';
    writeFileSync(file(repo, 'e', 'results.tsv'), edited);
    await appendRecord(repo, 'e', records[3]);
    const rows = rowsOf(read(file(repo, 'e', 'results.tsv')));
    assert.deepEqual(rows, records.map(tsvRow), 'each row is its own experiment');
    assert.deepEqual(rows.map((row) => row.split('\t')[0]), records.map((r) => r.commit!.slice(0, 7)));
    assert.equal(read(file(repo, 'e', 'results.tsv.edited')), edited, 'the hand edit is not lost');
    const again = read(file(repo, 'e', 'results.tsv')).replace('change 2', 'change 2 (rerun)');
    writeFileSync(file(repo, 'e', 'results.tsv'), again);
    await appendRecord(repo, 'e', record('e', 4));
    assert.equal(read(file(repo, 'e', 'results.tsv.edited.1')), again, 'a second edit does not replace the first');
    assert.equal(read(file(repo, 'e', 'results.tsv')), expectedTsv([...records, record('e', 4)]));
  });

  test('a results directory that cannot be created fails the activity at once, non-retryable, with the reason', async (t) => {
    const repo = makeRepo(t);
    writeFileSync(join(repo, 'results'), 'a file of the user where the results directory would go\n');
    const config = { tag: 't1', repo, editable: ['train.py'] } as RunConfig;
    await assert.rejects(recordExperiment({ config, record: record('t1', 0) }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, new RegExp(`cannot create ${join(repo, 'results', 't1')}: (ENOTDIR|EEXIST)`));
      return true;
    });
    assert.equal(read(join(repo, 'results')), 'a file of the user where the results directory would go\n');
  });

  test('a tag that could leave the results directory is refused, and a tag with no results reads as none', async (t) => {
    const repo = makeRepo(t);
    const refused = { name: 'RepoError', message: /tag "\.\.\/escape" cannot name a results directory/ };
    assert.throws(() => resultsDir(repo, '../escape'), refused);
    assert.deepEqual(await readRecordsChecked(repo, 'none-yet'), { records: [], bad: [] });
  });
});

describe('the results and report verbs', () => {
  test('`results TAG --repo` shows that tag alone, with one warning line per bad line and no server needed', async (t) => {
    const repo = makeRepo(t);
    await appendAll(repo, 'mine', [0, 1].map((n) => record('mine', n)));
    await appendAll(repo, 'other', [0, 1, 2].map((n) => record('other', n, { description: `other ${n}` })));
    appendFileSync(file(repo, 'mine', 'results.jsonl'), '{"id": "mine-2", "n": 2, "status": "ke\n');
    const out = await cli(['results', 'mine', '--repo', repo], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(out.code, 0, out.stderr);
    const table = out.stdout.trimEnd().split('\n');
    assert.equal(table.length, 3);
    assert.match(table[0], /^commit\s+val_bpb\s+memory_gb\s+status\s+description$/);
    assert.match(table[1], /^0000000\s+1\.000000\s+1\.5\s+keep\s+baseline$/);
    assert.match(table[2], /^0000001\s+1\.010000\s+1\.5\s+discard\s+change 1$/);
    assert.doesNotMatch(out.stdout, /other/);
    const warnings = out.stderr.trimEnd().split('\n');
    assert.deepEqual(warnings, [
      `warning: ${file(repo, 'mine', 'results.jsonl')} line 3 skipped, not valid JSON (a torn or hand-edited line): `
        + '{"id": "mine-2", "n": 2, "status": "ke',
    ]);
  });

  test('`report TAG --repo` writes into results/<tag>/report/ from that tag alone, warning once per bad line', async (t) => {
    const repo = makeRepo(t);
    await appendAll(repo, 'mine', [0, 1, 2].map((n) => record('mine', n)));
    await appendAll(repo, 'other', [0, 1, 2, 3, 4].map((n) => record('other', n)));
    appendFileSync(file(repo, 'mine', 'results.jsonl'), 'garbage\n');
    const out = await cli(['report', 'mine', '--repo', repo], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`summary: ${join(repo, 'results', 'mine', 'report', 'summary.md')}`));
    assert.equal(out.stderr.trimEnd().split('\n').filter((l) => l.startsWith('warning: ')).length, 1);
    assert.doesNotMatch(out.stderr, /\n\s+at /, 'no stack trace');
    const summary = read(join(resultsDir(repo, 'mine'), 'report', 'summary.md'));
    assert.match(summary, /^- experiments: 3 \(keep: 1, discard: 2, crash: 0\)$/m);
    assert.equal(gitIn(repo, 'status', '--porcelain', '--untracked-files=all'), '', 'the report leaves nothing untracked in the repo');
  });

  test('`results` for a tag with no results is one clear line and exit code 2', async (t) => {
    const repo = makeRepo(t);
    const out = await cli(['results', 'nothing', '--repo', repo], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(out.code, 2);
    assert.equal(out.stderr.trim(), `autoresearch: no results for nothing in ${join(repo, 'results', 'nothing')} yet`);
  });
});

describe('a run without a memo', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await devServer();
  });
  after(() => closeDevServer(env));

  test('`results` and `report` of a run whose memo names no repo ask for --repo in one line', async () => {
    // A real run of that id, started without a memo (no worker ever picks it up).
    const run = { taskQueue: 'nobody-polls', workflowId: 'autoresearch-nomemo', args: [] };
    await env.client.workflow.start('researchWorkflow', run);
    for (const verb of ['results', 'report']) {
      const out = await cli([verb, 'nomemo'], { TEMPORAL_ADDRESS: env.address });
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stderr.trim(), 'autoresearch: run nomemo has no research repo in its memo: name it with --repo PATH');
    }
  });
});
