// The control worker's activities against a real research repo: run setup, candidate commits, the
// results files and the sweep proposer, each safe to run twice.
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { commitCandidate, commitProposal, mergeProposal, rebaseProposal, prepareRun, propose, recordExperiment } from '../activities/index';
import { readFileAt, treeEntries } from '../activities/git';
import { gitBlobId, harnessDigest } from '../activities/harness';
import { resultsDir, TSV_HEADER } from '../activities/results';
import type { ExperimentRecord, RunConfig, RunSetup } from '../workflows/types';

const TRAIN_PY = ['import prepare', '', 'LR = 0.1  # learning rate', 'DEPTH = 4  # layers', '', 'print("---")', 'print("val_bpb: 1.0")', ''].join('\n');
const PREPARE_PY = 'def load():\n    return b"data"\n';
const PROGRAM_MD = '# Research program\n\nLower val_bpb.\n';

function sh(cwd: string, args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'commit.gpgsign=false', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  }).trim();
}

function write(dir: string, path: string, content: string): void {
  writeFileSync(join(dir, path), content);
}

function commitAll(dir: string, message: string): string {
  sh(dir, ['add', '-A']);
  sh(dir, ['commit', '-q', '-m', message]);
  return sh(dir, ['rev-parse', 'HEAD']);
}

/** A research repo with program.md, train.py and prepare.py committed on main; removed after the test. */
function makeRepo(t: TestContext, files: Record<string, string> = { 'program.md': PROGRAM_MD, 'train.py': TRAIN_PY, 'prepare.py': PREPARE_PY }): string {
  const dir = mkdtempSync(join(tmpdir(), 'autoresearch-repo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  sh(dir, ['init', '-q', '-b', 'main']);
  for (const [path, content] of Object.entries(files)) write(dir, path, content);
  commitAll(dir, 'research files');
  return dir;
}

function configFor(repo: string, fields: Partial<RunConfig> = {}): RunConfig {
  return {
    tag: 't1',
    repo,
    proposer: 'sweep',
    editable: ['train.py'],
    command: 'python3 train.py',
    timeoutMs: 60_000,
    budgetSeconds: 30,
    parallel: 1,
    seed: 1,
    minImprovement: 0,
    ...fields,
  };
}

/** A repo for the results files alone: recording without a move needs no run branch. */
function plainRepo(t: TestContext): { repo: string; config: RunConfig; head: string } {
  const repo = makeRepo(t);
  return { repo, config: configFor(repo), head: rev(repo, 'HEAD') };
}

async function preparedRepo(t: TestContext): Promise<{ repo: string; config: RunConfig; setup: RunSetup }> {
  const repo = makeRepo(t);
  const config = configFor(repo);
  return { repo, config, setup: await prepareRun(config) };
}

/**
 * Writes a candidate ref the way commitCandidate does, with plain git plumbing: commitCandidate costs a
 * quarter second, and the exhaustion loops below need a dozen candidates each.
 */
function plumbedCandidate(repo: string, tag: string, id: string, parent: string, content: string): string {
  const scratch = mkdtempSync(join(tmpdir(), 'autoresearch-test-index-'));
  try {
    const file = join(scratch, 'train.py');
    writeFileSync(file, content);
    const env = { ...process.env, GIT_INDEX_FILE: join(scratch, 'index'), GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
    const git = (args: string[]) => execFileSync('git', args, { cwd: repo, env, encoding: 'utf8' }).trim();
    git(['read-tree', parent]);
    const blob = git(['hash-object', '-w', file]);
    git(['update-index', '--cacheinfo', `100644,${blob},train.py`]);
    const commit = git(['commit-tree', git(['write-tree']), '-p', parent, '-m', `candidate\n\nExperiment-Id: ${id}`]);
    git(['update-ref', `refs/autoresearch/${tag}/${id}`, commit, '0'.repeat(40)]);
    return commit;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function rev(repo: string, ref: string): string {
  return sh(repo, ['rev-parse', '--verify', ref]);
}

function refs(repo: string, prefix: string): string[] {
  return sh(repo, ['for-each-ref', '--format=%(refname) %(objectname)', prefix]).split('\n').filter(Boolean);
}

/** The user's side of the repo: what must never change under the activities. */
function userState(repo: string) {
  return {
    head: rev(repo, 'HEAD'),
    branch: sh(repo, ['symbolic-ref', 'HEAD']),
    status: sh(repo, ['status', '--porcelain', '--untracked-files=no']),
    index: sh(repo, ['ls-files', '--stage']),
    train: readFileSync(join(repo, 'train.py'), 'utf8'),
  };
}

function nonRetryable(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.nonRetryable, true, 'a deterministic refusal is not retried');
    assert.match(err.message, pattern);
    return true;
  };
}

function record(fields: Partial<ExperimentRecord> & Pick<ExperimentRecord, 'id' | 'n'>): ExperimentRecord {
  return {
    parent: null,
    commit: null,
    description: 'baseline',
    status: 'keep',
    reason: 'baseline',
    valBpb: 1,
    memoryGb: 0,
    metrics: {},
    proposer: 'baseline',
    tokens: 0,
    startedAt: '2026-11-27T22:00:00.000Z',
    finishedAt: '2026-11-27T22:05:00.000Z',
    trainingSeconds: 300,
    ...fields,
  };
}

// The run's files, in results/<tag>/ of the repo (the tag of configFor).
const readTsv = (repo: string) => readFileSync(join(resultsDir(repo, 't1'), 'results.tsv'), 'utf8');
const readJsonl = (repo: string) => readFileSync(join(resultsDir(repo, 't1'), 'results.jsonl'), 'utf8');

// Every test has its own repo, so they all run at once: most of the time is spent waiting on git.
describe('control activities', { concurrency: true }, () => {
  describe('prepareRun', { concurrency: true }, () => {
    test('creates the run branch and the baseline ref at HEAD, leaving the checkout alone', async (t) => {
      const repo = makeRepo(t);
      const before = userState(repo);
      const setup = await prepareRun(configFor(repo));
      assert.equal(setup.baseCommit, before.head);
      assert.equal(rev(repo, 'refs/heads/autoresearch/t1'), before.head);
      assert.equal(rev(repo, 'refs/autoresearch/t1/t1-0'), before.head);
      assert.match(setup.harnessDigest, /^[0-9a-f]{16}$/);
      assert.deepEqual(userState(repo), before);
    });

    test('called twice returns the same setup and creates nothing more', async (t) => {
      const repo = makeRepo(t);
      const first = await prepareRun(configFor(repo));
      const second = await prepareRun(configFor(repo));
      assert.deepEqual(second, first);
      assert.equal(refs(repo, 'refs/autoresearch/').length, 1);
      assert.equal(refs(repo, 'refs/heads/autoresearch/').length, 1);
    });

    test('resuming a tag whose branch has moved keeps the branch, not HEAD', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const sha = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': TRAIN_PY.replace('0.1', '0.05') } });
      await recordExperiment({ config, record: record({ id: 't1-1', n: 1, commit: sha }), move: { from: setup.baseCommit, to: sha } });
      const again = await prepareRun(config);
      assert.equal(again.baseCommit, sha);
      assert.equal(rev(repo, 'refs/autoresearch/t1/t1-0'), setup.baseCommit, 'the baseline ref is not moved');
      assert.equal(again.harnessDigest, setup.harnessDigest);
    });

    test('refuses a repo with an uncommitted change to a tracked file, naming the file', async (t) => {
      const repo = makeRepo(t);
      write(repo, 'prepare.py', PREPARE_PY + '# local edit\n');
      await assert.rejects(prepareRun(configFor(repo)), nonRetryable(/uncommitted changes.*prepare\.py/));
      assert.deepEqual(refs(repo, 'refs/heads/autoresearch/'), [], 'nothing is created for a refused run');
    });

    test('untracked files such as results.tsv do not count as uncommitted changes', async (t) => {
      const repo = makeRepo(t);
      write(repo, 'results.tsv', TSV_HEADER + '\n');
      write(repo, 'notes.txt', 'scratch\n');
      await prepareRun(configFor(repo));
    });

    test('refuses a repo without program.md', async (t) => {
      const repo = makeRepo(t, { 'train.py': TRAIN_PY, 'prepare.py': PREPARE_PY });
      await assert.rejects(prepareRun(configFor(repo)), nonRetryable(/program\.md/));
    });

    test('refuses an editable file that is not tracked, even if it exists on disk', async (t) => {
      const repo = makeRepo(t);
      write(repo, 'model.py', 'WIDTH = 64\n');
      await assert.rejects(prepareRun(configFor(repo, { editable: ['train.py', 'model.py'] })), nonRetryable(/editable file model\.py is not tracked/));
    });

    test('refuses a directory inside a repo and a path that does not exist', async (t) => {
      const repo = makeRepo(t);
      mkdirSync(join(repo, 'sub'));
      await assert.rejects(prepareRun(configFor(join(repo, 'sub'))), nonRetryable(/not the top of a git repository/));
      await assert.rejects(prepareRun(configFor(join(repo, 'missing'))), nonRetryable(/not found/));
    });

    test('the harness digest ignores train.py and program.md but not prepare.py', async (t) => {
      const repo = makeRepo(t);
      const base = await prepareRun(configFor(repo, { tag: 't1' }));

      write(repo, 'train.py', TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 6'));
      write(repo, 'program.md', PROGRAM_MD + '\nAlso try deeper models.\n');
      commitAll(repo, 'edit the editable file and the instructions');
      const edited = await prepareRun(configFor(repo, { tag: 't2' }));
      assert.notEqual(edited.baseCommit, base.baseCommit);
      assert.equal(edited.harnessDigest, base.harnessDigest);

      write(repo, 'prepare.py', PREPARE_PY.replace('data', 'other data'));
      commitAll(repo, 'change the harness');
      const harness = await prepareRun(configFor(repo, { tag: 't3' }));
      assert.notEqual(harness.harnessDigest, base.harnessDigest);

      // With prepare.py declared editable, it leaves the harness too.
      const asEditable = await prepareRun(configFor(repo, { tag: 't4', editable: ['train.py', 'prepare.py'] }));
      const before = harnessDigest(await treeEntries(repo, base.baseCommit), ['train.py', 'prepare.py']);
      assert.equal(asEditable.harnessDigest, before);
    });

    test('the digest from the commit tree equals the digest a GPU worker computes from files on disk', async (t) => {
      const repo = makeRepo(t);
      const setup = await prepareRun(configFor(repo));
      const paths = sh(repo, ['ls-files']).split('\n');
      const fromDisk = harnessDigest(paths.map((path) => ({ path, blob: gitBlobId(readFileSync(join(repo, path))) })), ['train.py']);
      assert.equal(fromDisk, setup.harnessDigest);
    });
  });

  describe('commitCandidate', { concurrency: true }, () => {
    test('commits the files on the given parent with the description and an Experiment-Id trailer', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const content = TRAIN_PY.replace('LR = 0.1', 'LR = 0.05');
      const sha = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': content } });
      assert.match(sha, /^[0-9a-f]{40}$/);
      assert.equal(rev(repo, `${sha}^`), setup.baseCommit);
      assert.equal(sh(repo, ['rev-list', '--count', `${setup.baseCommit}..${sha}`]), '1');
      assert.equal(sh(repo, ['log', '-1', '--format=%s', sha]), 'LR 0.1 -> 0.05');
      assert.equal(sh(repo, ['log', '-1', '--format=%(trailers:key=Experiment-Id,valueonly)', sha]), 't1-1');
      assert.equal(sh(repo, ['show', `${sha}:train.py`]), content.trim());
      assert.equal(sh(repo, ['show', `${sha}:prepare.py`]), PREPARE_PY.trim(), 'files not given are kept from the parent');
      assert.deepEqual(sh(repo, ['diff', '--name-only', setup.baseCommit, sha]).split('\n'), ['train.py']);
      assert.equal(rev(repo, 'refs/autoresearch/t1/t1-1'), sha);
      assert.equal(sh(repo, ['log', '-1', '--format=%an <%ae>', sha]), 'autoresearch <autoresearch@localhost>');
    });

    test("never touches the user's working tree, index or checked-out branch", async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const before = userState(repo);
      await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'DEPTH 4 -> 8', files: { 'train.py': TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8') } });
      assert.deepEqual(userState(repo), before);
      assert.equal(sh(repo, ['status', '--porcelain']), '', 'git status is clean');
      assert.equal(rev(repo, 'refs/heads/autoresearch/t1'), setup.baseCommit, 'committing a candidate does not move the run branch');
    });

    test('called twice returns the same commit and leaves exactly one ref', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const input = { config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.55', files: { 'train.py': TRAIN_PY.replace('0.1', '0.55') } };
      const first = await commitCandidate(input);
      const second = await commitCandidate(input);
      assert.equal(second, first);
      assert.deepEqual(refs(repo, 'refs/autoresearch/t1/t1-1'), [`refs/autoresearch/t1/t1-1 ${first}`]);
      assert.equal(refs(repo, 'refs/autoresearch/t1/').length, 2, 'the baseline ref and this candidate');
    });

    test('an existing ref holding other content is refused by name, never returned as this candidate', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const input = { config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.55', files: { 'train.py': TRAIN_PY.replace('0.1', '0.55') } };
      const first = await commitCandidate(input);
      const other = { ...input, description: 'DEPTH 4 -> 8', files: { 'train.py': TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8') } };
      await assert.rejects(commitCandidate(other), nonRetryable(/refs\/autoresearch\/t1\/t1-1 already exists with other content/));
      assert.deepEqual(refs(repo, 'refs/autoresearch/t1/t1-1'), [`refs/autoresearch/t1/t1-1 ${first}`], 'the ref is left as it was');
    });
  });

  describe('proposals ahead of the slots', { concurrency: true }, () => {
    test('a proposal is committed on its parent under a ref of its own, once', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const files = { 'train.py': TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8') };
      const input = { config, key: 7, parent: setup.baseCommit, description: 'DEPTH 4 -> 8', files };
      const commit = await commitProposal(input);
      assert.equal(await commitProposal(input), commit);
      assert.deepEqual(refs(repo, 'refs/autoresearch/t1/proposals/'), [`refs/autoresearch/t1/proposals/7-${setup.baseCommit.slice(0, 12)} ${commit}`]);
      assert.equal(rev(repo, `${commit}^`), setup.baseCommit);
    });

    test('rebasing re-applies the same edits on the new best, or says why they no longer apply', async (t) => {
      const { config, setup } = await preparedRepo(t);
      const best = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': TRAIN_PY.replace('LR = 0.1', 'LR = 0.05') } });
      const deeper = { path: 'train.py', search: 'DEPTH = 4', replace: 'DEPTH = 8' };
      const rebased = await rebaseProposal({ config, key: 2, onto: best, description: 'DEPTH 4 -> 8', edits: [deeper] });
      assert.ok(rebased.ok, JSON.stringify(rebased));
      assert.equal(rev(config.repo, `${rebased.commit}^`), best);
      assert.match(rebased.files['train.py'], /LR = 0\.05[\s\S]*DEPTH = 8/);
      const lr = { path: 'train.py', search: 'LR = 0.1', replace: 'LR = 0.2' };
      const stale = await rebaseProposal({ config, key: 3, onto: best, description: 'LR 0.1 -> 0.2', edits: [lr] });
      assert.equal(stale.ok, false);
      assert.match(!stale.ok ? stale.reason : '', /does not occur/);
    });
  });

  describe('merging a queued proposal onto a newer best (three-way, by git)', { concurrency: true }, () => {
    const KNOBS = ['ALPHA = 1.0  # one knob', '', 'def body():', '    return 1', '', 'BETA = 1.0  # another', ''].join('\n');
    const halve = (text: string, knob: string) => text.replace(`${knob} = 1.0`, `${knob} = 0.5`);
    async function knobs(t: TestContext) {
      const { repo, config, setup } = await preparedRepo(t);
      const base = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'knobs', files: { 'train.py': KNOBS } });
      const best = await commitCandidate({ config, experimentId: 't1-2', parent: base, description: 'ALPHA halved', files: { 'train.py': halve(KNOBS, 'ALPHA') } });
      return { repo, config, base, best };
    }
    const show = (repo: string, commit: string) => readFileAt(repo, commit, 'train.py');

    test('a whole-file rewrite made on the old best keeps the keep made since (ALPHA) and adds its own (BETA)', async (t) => {
      const { repo, config, base, best } = await knobs(t);
      const proposal = await commitProposal({ config, key: 4, parent: base, description: 'BETA halved', files: { 'train.py': halve(KNOBS, 'BETA') } });
      const merged = await mergeProposal({ config, key: 4, base, onto: best, commit: proposal, description: 'BETA halved' });
      assert.ok(merged.ok, JSON.stringify(merged));
      assert.equal(await show(repo, merged.commit), halve(halve(KNOBS, 'ALPHA'), 'BETA'));
      assert.equal(rev(repo, `${merged.commit}^`), best);
      assert.equal(merged.change, 'BETA 1.0 -> 0.5');
      assert.deepEqual(await mergeProposal({ config, key: 4, base, onto: best, commit: proposal, description: 'BETA halved' }), merged, 'a retry makes the same commit');
    });

    test('two knobs on adjacent lines merge: git\'s merge sees one conflict, the change applied without context does not', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const best = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': TRAIN_PY.replace('LR = 0.1', 'LR = 0.05') } });
      const deeper = await commitProposal({ config, key: 3, parent: setup.baseCommit, description: 'DEPTH 4 -> 8', files: { 'train.py': TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8') } });
      const merged = await mergeProposal({ config, key: 3, base: setup.baseCommit, onto: best, commit: deeper, description: 'DEPTH 4 -> 8' });
      assert.ok(merged.ok, JSON.stringify(merged));
      assert.equal(await show(repo, merged.commit), TRAIN_PY.replace('LR = 0.1', 'LR = 0.05').replace('DEPTH = 4', 'DEPTH = 8'));
    });

    test('a repair lands the crashed change with its fix on the new best: the crash\'s parent is the base', async (t) => {
      const { repo, config, base, best } = await knobs(t);
      const crashed = halve(KNOBS, 'BETA').replace('return 1', 'return 1 / 0');
      const repaired = crashed.replace('return 1 / 0', 'return 1 / 1');
      const repair = await commitProposal({ config, key: 5, parent: base, description: 'fix the division', files: { 'train.py': repaired } });
      const merged = await mergeProposal({ config, key: 5, base, onto: best, commit: repair, description: 'fix the division' });
      assert.ok(merged.ok, JSON.stringify(merged));
      assert.equal(await show(repo, merged.commit), halve(halve(KNOBS, 'ALPHA'), 'BETA').replace('return 1', 'return 1 / 1'));
    });

    test('a conflict drops the proposal with the paths that conflict, and its refs go', async (t) => {
      const { repo, config, base, best } = await knobs(t);
      const proposal = await commitProposal({ config, key: 6, parent: base, description: 'ALPHA doubled', files: { 'train.py': KNOBS.replace('ALPHA = 1.0', 'ALPHA = 2.0') } });
      const merged = await mergeProposal({ config, key: 6, base, onto: best, commit: proposal, description: 'ALPHA doubled' });
      assert.deepEqual(merged, { ok: false, reason: 'it conflicts with the best in train.py' });
      assert.deepEqual(refs(repo, 'refs/autoresearch/t1/proposals/'), []);
    });

    test('a change the best already holds is dropped, not trained twice', async (t) => {
      const { config, base, best } = await knobs(t);
      const proposal = await commitProposal({ config, key: 7, parent: base, description: 'ALPHA halved', files: { 'train.py': halve(KNOBS, 'ALPHA') } });
      const merged = await mergeProposal({ config, key: 7, base, onto: best, commit: proposal, description: 'ALPHA halved' });
      assert.deepEqual(merged, { ok: false, reason: 'the best already holds its change' });
    });
  });

  describe('recordExperiment', { concurrency: true }, () => {
    test('appends one row under the exact header, with a 7-char commit, %.6f val_bpb and %.1f memory_gb', async (t) => {
      const { repo, config, head } = plainRepo(t);
      const r = record({ id: 't1-0', n: 0, commit: head, valBpb: 0.99791234, memoryGb: 44.04, metrics: { val_bpb: 0.99791234 } });
      await recordExperiment({ config, record: r });
      assert.equal(readTsv(repo), `commit\tval_bpb\tmemory_gb\tstatus\tdescription\n${head.slice(0, 7)}\t0.997912\t44.0\tkeep\tbaseline\n`);
      const lines = readJsonl(repo).split('\n').filter(Boolean);
      assert.equal(lines.length, 1);
      assert.deepEqual(JSON.parse(lines[0]), { ...r });
    });

    test('recording the same experiment again adds nothing to either file', async (t) => {
      const { repo, config, head } = plainRepo(t);
      const r = record({ id: 't1-0', n: 0, commit: head, logTail: 'step 1\n---\nval_bpb: 1.0\n' });
      await recordExperiment({ config, record: r });
      const [tsv, jsonl] = [readTsv(repo), readJsonl(repo)];
      await recordExperiment({ config, record: r });
      await recordExperiment({ config, record: { ...r, finishedAt: '2026-11-27T23:00:00.000Z' } });
      assert.equal(readTsv(repo), tsv);
      assert.equal(readJsonl(repo), jsonl);
    });

    test('a crash without a commit gets commit 0000000 and val_bpb 0.000000', async (t) => {
      const { repo, config } = plainRepo(t);
      await recordExperiment({ config, record: record({ id: 't1-1', n: 1, status: 'crash', reason: 'exit code 1', valBpb: null, commit: null, description: 'LR 0.1 -> 0.8875' }) });
      assert.equal(readTsv(repo).split('\n')[1], '0000000\t0.000000\t0.0\tcrash\tLR 0.1 -> 0.8875');
    });

    test('tabs and newlines in a description cannot break the tsv row', async (t) => {
      const { repo, config } = plainRepo(t);
      await recordExperiment({ config, record: record({ id: 't1-1', n: 1, status: 'discard', description: 'wider\tMLP\nand more\r\n' }) });
      const rows = readTsv(repo).split('\n').filter(Boolean);
      assert.equal(rows.length, 2);
      assert.equal(rows[1].split('\t').length, 5);
      assert.ok(rows[1].endsWith('\tdiscard\twider MLP and more'));
    });

    test('a row lost between the two appends is restored exactly once on retry', async (t) => {
      const { repo, config, head } = plainRepo(t);
      const r0 = record({ id: 't1-0', n: 0, commit: head, valBpb: 1.0 });
      const r1 = record({ id: 't1-1', n: 1, commit: null, status: 'crash', valBpb: null, description: 'LR 0.1 -> 0.05' });
      await recordExperiment({ config, record: r0 });
      await recordExperiment({ config, record: r1 });
      const [tsv, jsonl] = [readTsv(repo), readJsonl(repo)];
      // The worker died after the jsonl append and before the tsv append: drop the last tsv row.
      const lines = tsv.split('\n').filter(Boolean);
      write(resultsDir(repo, 't1'), 'results.tsv', lines.slice(0, -1).join('\n') + '\n');
      await recordExperiment({ config, record: r1 });
      assert.equal(readTsv(repo), tsv);
      assert.equal(readJsonl(repo), jsonl);
      await recordExperiment({ config, record: r1 });
      assert.equal(readTsv(repo), tsv, 'a further retry adds nothing');
    });

    test('a results.tsv deleted entirely gets its header back', async (t) => {
      const { repo, config, head } = plainRepo(t);
      const r0 = record({ id: 't1-0', n: 0, commit: head });
      await recordExperiment({ config, record: r0 });
      const tsv = readTsv(repo);
      unlinkSync(join(resultsDir(repo, 't1'), 'results.tsv'));
      await recordExperiment({ config, record: r0 });
      assert.equal(readTsv(repo), tsv);
    });

    test('a keep with a move moves the run branch, and a retry of the same move succeeds', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const before = userState(repo);
      const sha = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': TRAIN_PY.replace('0.1', '0.05') } });
      const input = { config, record: record({ id: 't1-1', n: 1, commit: sha, description: 'LR 0.1 -> 0.05', proposer: 'sweep' }), move: { from: setup.baseCommit, to: sha } };
      await recordExperiment(input);
      assert.equal(rev(repo, 'refs/heads/autoresearch/t1'), sha);
      const tsv = readTsv(repo);
      await recordExperiment(input);
      assert.equal(rev(repo, 'refs/heads/autoresearch/t1'), sha);
      assert.equal(readTsv(repo), tsv);
      assert.deepEqual(userState(repo), before, 'the checked-out branch is not the run branch and stays put');
    });

    test('a move whose from is not the branch tip is refused, non-retryable, and the experiment keeps its row', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const a = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'LR 0.1 -> 0.05', files: { 'train.py': TRAIN_PY.replace('0.1', '0.05') } });
      const b = await commitCandidate({ config, experimentId: 't1-2', parent: setup.baseCommit, description: 'DEPTH 4 -> 8', files: { 'train.py': TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8') } });
      await recordExperiment({ config, record: record({ id: 't1-1', n: 1, commit: a }), move: { from: setup.baseCommit, to: a } });
      const tsv = readTsv(repo);
      await assert.rejects(
        recordExperiment({ config, record: record({ id: 't1-2', n: 2, commit: b }), move: { from: setup.baseCommit, to: b } }),
        nonRetryable(new RegExp(`autoresearch/t1 was moved outside the run \\(expected ${setup.baseCommit.slice(0, 7)}, found ${a.slice(0, 7)}\\)`)),
      );
      assert.equal(rev(repo, 'refs/heads/autoresearch/t1'), a, 'the branch is left where it was');
      assert.equal(readTsv(repo), tsv + `${b.slice(0, 7)}\t1.000000\t0.0\tkeep\tbaseline\n`, 'the row is written before the move is tried');
    });
  });

  describe('propose (sweep)', { concurrency: true }, () => {
    test('proposes a change of exactly one constant of the editable file', async (t) => {
      const { config, setup } = await preparedRepo(t);
      const proposal = await propose({ config, key: 1, parent: setup.baseCommit, inFlight: [] });
      assert.ok(proposal.ok, JSON.stringify(proposal));
      assert.equal(proposal.tokens, 0);
      assert.deepEqual(Object.keys(proposal.files), ['train.py']);
      const before = TRAIN_PY.split('\n');
      const after = proposal.files['train.py'].split('\n');
      assert.equal(after.length, before.length);
      const changed = before.filter((line, i) => line !== after[i]);
      assert.equal(changed.length, 1);
      assert.match(changed[0], /^(LR|DEPTH) = /);
      assert.match(proposal.description, /^(LR|DEPTH) \S+ -> \S+$/);
    });

    test('is deterministic for the same run state', async (t) => {
      const { config, setup } = await preparedRepo(t);
      const input = { config, key: 3, parent: setup.baseCommit, inFlight: [] };
      assert.deepEqual(await propose(input), await propose(input));
    });

    test('never re-proposes a configuration that has a candidate ref, until the sweep is exhausted', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const seen = new Set([gitBlobId(Buffer.from(TRAIN_PY))]);
      let n = 1;
      for (; n < 50; n++) {
        const proposal = await propose({ config, key: n, parent: setup.baseCommit, inFlight: [] });
        if (!proposal.ok) {
          assert.match(proposal.reason, /exhausted/);
          break;
        }
        const blob = gitBlobId(Buffer.from(proposal.files['train.py']));
        assert.ok(!seen.has(blob), `experiment ${n} re-proposed a tried configuration (${proposal.description})`);
        seen.add(blob);
        plumbedCandidate(repo, 't1', `t1-${n}`, setup.baseCommit, proposal.files['train.py']);
      }
      // LR has 6 reachable values, DEPTH 5 (8, 2, 16, 1, 32).
      assert.equal(n - 1, 11);
      assert.equal(refs(repo, 'refs/autoresearch/t1/').length, 12);
    });

    test('after a keep, the sweep from the new best never steps back to the baseline configuration', async (t) => {
      const { repo, config, setup } = await preparedRepo(t);
      const deeper = TRAIN_PY.replace('DEPTH = 4', 'DEPTH = 8');
      const best = await commitCandidate({ config, experimentId: 't1-1', parent: setup.baseCommit, description: 'DEPTH 4 -> 8', files: { 'train.py': deeper } });
      const seen = new Set([gitBlobId(Buffer.from(TRAIN_PY)), gitBlobId(Buffer.from(deeper))]);
      let n = 2;
      for (; n < 50; n++) {
        const proposal = await propose({ config, key: n, parent: best, inFlight: [] });
        if (!proposal.ok) break;
        assert.notEqual(proposal.files['train.py'], TRAIN_PY, `experiment ${n} proposed the baseline again`);
        const blob = gitBlobId(Buffer.from(proposal.files['train.py']));
        assert.ok(!seen.has(blob), `experiment ${n} repeated ${proposal.description}`);
        seen.add(blob);
        plumbedCandidate(repo, 't1', `t1-${n}`, best, proposal.files['train.py']);
      }
      // From DEPTH 8: LR's 6 values and DEPTH 16, 32, 2, 64, 1 (DEPTH 4 is the baseline, already tried).
      assert.equal(n - 2, 11);
    });

    test('an editable file without UPPER_CASE constants gives a clear not-ok proposal', async (t) => {
      const repo = makeRepo(t, { 'program.md': PROGRAM_MD, 'train.py': 'lr = 0.1\n', 'prepare.py': PREPARE_PY });
      const config = configFor(repo);
      const setup = await prepareRun(config);
      const proposal = await propose({ config, key: 1, parent: setup.baseCommit, inFlight: [] });
      assert.deepEqual(proposal, { ok: false, reason: 'no UPPER_CASE = number hyperparameters in the editable files', tokens: 0, final: true });
    });
  });
});
