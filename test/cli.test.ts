// Every user mistake: one line on stderr, a non-zero exit, no stack trace, nothing changed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, devServer, gitIn, makeRepo } from './helpers';

const TRAIN = 'LR = 0.1  # learning rate\nprint("---\\nval_bpb: 1.0")\n';
const UNREACHABLE = { TEMPORAL_ADDRESS: '127.0.0.1:1' };

async function expectOneLine(args: string[], message: RegExp, env: NodeJS.ProcessEnv = UNREACHABLE) {
  const { code, stdout, stderr } = await cli(args, env);
  assert.equal(code, 2, `exit code for ${args.join(' ')}: ${stderr}`);
  assert.equal(stdout, '');
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${stderr}`);
  assert.match(lines[0], /^autoresearch: /);
  assert.match(lines[0], message);
}

describe('mistakes caught before reaching the server', () => {
  test('an unknown verb names the verbs there are', () => expectOneLine(['frobnicate'], /unknown verb "frobnicate" \(try: demo, /));
  test('an unknown flag names the verb', () => expectOneLine(['start', '--colour', 'red'], /^autoresearch: start: Unknown option '--colour'/));
  test('a malformed duration says what would be accepted', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--timeout', 'soon'], /--timeout: "soon" is not a duration \(try 90s, 5m or 1h30m\)/);
  });
  test('a budget that leaves no room within the timeout is refused', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--timeout', '1m', '--budget', '60'], /--budget 60s leaves no time .* --timeout 1m/);
  });
  test('a tag that cannot be a branch name is refused', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', '../x'], /tag "..\/x" may use letters, digits/);
  });
  test('a missing --repo is named', () => expectOneLine(['start', '--tag', 't'], /start: --repo is required/));
  test('a repo that does not exist is named', () => expectOneLine(['start', '--repo', '/nonexistent/repo', '--tag', 't'], /research repo not found: \/nonexistent\/repo/));
  test('a directory that is not a git repo is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'not-a-repo-'));
    await expectOneLine(['start', '--repo', dir, '--tag', 't'], /is not the top of a git repository/);
  });
  test('a repo with uncommitted changes to tracked files is refused, and left as it was', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await writeFile(join(repo, 'train.py'), 'LR = 0.2\n');
    await expectOneLine(['start', '--repo', repo, '--tag', 't'], /uncommitted changes to tracked files \(train.py\): commit or stash them first/);
    assert.equal(gitIn(repo, 'status', '--porcelain'), 'M train.py');
    assert.equal(gitIn(repo, 'branch', '--list', 'autoresearch/*'), '');
  });
  test('a repo without program.md is refused', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    gitIn(repo, 'rm', '--quiet', 'program.md');
    gitIn(repo, 'commit', '--quiet', '-m', 'no program');
    await expectOneLine(['start', '--repo', repo, '--tag', 't'], /has no program.md in HEAD/);
  });
  test('an editable file that is not tracked is refused', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--editable', 'model.py'], /editable file model.py is not tracked/);
  });
  test('an editable path outside the repo is refused', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--editable', '../x.py'], /--editable: ..\/x.py must be a path inside the repo/);
  });
  test('an unknown proposer is named', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--proposer', 'oracle'], /--proposer: "oracle" is not one of llm, sweep/);
  });
  test('--proposer llm without an endpoint says what to set', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--proposer', 'llm'], /--proposer llm needs OPENAI_API_KEY \(OpenAI\) or OPENAI_BASE_URL/, { ...UNREACHABLE, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' });
  });
  test('an endpoint without a model says how to name one', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't'], /the llm proposer needs a model: --model NAME or AUTORESEARCH_MODEL/, { ...UNREACHABLE, OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', AUTORESEARCH_MODEL: '' });
  });
  test('a malformed autoresearch.json is named', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN, 'autoresearch.json': '{"command": 3}' });
    await expectOneLine(['start', '--repo', repo, '--tag', 't'], /autoresearch.json in .*: expected \{"command": string/);
  });
  test('an unreachable server says where it looked and what to do', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['start', '--repo', repo, '--tag', 't'], /cannot reach the Temporal server at 127.0.0.1:1 .*npx autoresearch server/);
  });
  test('init refuses a directory that is not empty, and an unknown target', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    await expectOneLine(['init', '--target', 'tiny', repo], /already exists and is not empty/);
    await expectOneLine(['init', '--target', 'huge', join(repo, 'new')], /unknown target "huge" \(available: .*tiny/);
  });
  test('status needs exactly one tag', () => expectOneLine(['status'], /status: expected one TAG/));
});

describe('mistakes the server reveals', () => {
  let env: TestWorkflowEnvironment;
  let server: NodeJS.ProcessEnv;
  before(async () => {
    env = await devServer();
    server = { TEMPORAL_ADDRESS: env.address };
  });
  after(async () => env?.teardown());

  test('status, pause and stop of an unknown tag say there is no such run', async () => {
    await expectOneLine(['status', 'ghost'], /no run with tag ghost/, server);
    await expectOneLine(['pause', 'ghost'], /no run with tag ghost/, server);
    await expectOneLine(['stop', 'ghost'], /no run with tag ghost/, server);
  });

  test('a tag that is already running is refused, and status --json prints the documented object', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    const first = await cli(['start', '--repo', repo, '--tag', 'twice', '--max-experiments', '2', '--proposer', 'sweep'], server);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /started:  autoresearch-twice/);
    assert.match(first.stdout, /proposer: sweep \(--proposer sweep\)/);
    assert.match(first.stdout, /web ui:   http:\/\/.*\/namespaces\/default\/workflows\/autoresearch-twice/);
    await expectOneLine(['start', '--repo', repo, '--tag', 'twice'], /tag twice is already running \(autoresearch-twice\)/, { ...server, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' });
    const llm = await cli(['start', '--repo', repo, '--tag', 'with-llm', '--model', 'm'], { ...server, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' });
    assert.equal(llm.code, 0, llm.stderr);
    assert.match(llm.stdout, /proposer: llm \(OPENAI_BASE_URL is http:\/\/127.0.0.1:9\/v1\)/);

    // No worker is running: status still answers, from what the server knows.
    const status = await cli(['status', 'twice', '--json'], server);
    assert.equal(status.code, 0, status.stderr);
    const view = JSON.parse(status.stdout);
    assert.deepEqual(Object.keys(view), ['tag', 'workflowId', 'state', 'experimentsDone', 'experimentsKept', 'best', 'inFlight']);
    assert.deepEqual(view, { tag: 'twice', workflowId: 'autoresearch-twice', state: 'running', experimentsDone: 0, experimentsKept: 0, best: null, inFlight: [] });
  });
});
