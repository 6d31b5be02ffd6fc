// Every user mistake: one line on stderr, a non-zero exit, no stack trace, nothing changed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { msToTs } from '@temporalio/common/lib/time';
import { execFileSync } from 'node:child_process';
import { webUiBase } from '../scripts/connect';
import { startSummary } from '../scripts/runs';
import { temporalCli } from '../scripts/provision';
import { cli, devServer, gitIn, makeRepo } from './helpers';

const TRAIN = 'LR = 0.1  # learning rate\nprint("---\\nval_bpb: 1.0")\n';
const UNREACHABLE = { TEMPORAL_ADDRESS: '127.0.0.1:1' };

async function expectOneLine(args: string[], message: RegExp, env: NodeJS.ProcessEnv = UNREACHABLE): Promise<void> {
  await oneLine(args, message, env);
}

/** The one line of a refused command. */
async function oneLine(args: string[], message: RegExp, env: NodeJS.ProcessEnv): Promise<string> {
  const { code, stdout, stderr } = await cli(args, env);
  assert.equal(code, 2, `exit code for ${args.join(' ')}: ${stderr}`);
  assert.equal(stdout, '');
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${stderr}`);
  assert.match(lines[0], /^autoresearch: /);
  assert.match(lines[0], message);
  return lines[0];
}

describe('mistakes caught before reaching the server', () => {
  test('an unknown verb names the verbs there are', () => expectOneLine(['frobnicate'], /unknown verb "frobnicate" \(try: demo, /));
  test('an unknown flag names the verb', () => expectOneLine(['start', '--colour', 'red'], /^autoresearch: start: Unknown option '--colour' \(see npx autoresearch start --help\)$/));
  test('a mistyped flag suggests the flag that was meant', async () => {
    await expectOneLine(['start', '--max-experiment', '3'], /start: Unknown option '--max-experiment' \(did you mean --max-experiments\?\)$/);
    await expectOneLine(['status', 'x', '--jsno'], /status: Unknown option '--jsno' \(did you mean --json\?\)$/);
    await expectOneLine(['gpu-worker', '--slot', '2'], /gpu-worker: Unknown option '--slot' \(did you mean --slots\?\)$/);
  });
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
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--proposer', 'oracle'], /--proposer: "oracle" is not one of llm, sweep, tpe, cmaes, mixed/);
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

  test('--until sooner than one --timeout from now is refused: no experiment could finish', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    const soon = new Date(Date.now() + 2 * 60_000).toISOString();
    const refused = /--until .* is (2m|1[01]\d+s) away, less than one --timeout \(5m\): no experiment could finish before it/;
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--until', soon, '--timeout', '5m'], refused);
    const later = new Date(Date.now() + 10 * 60_000).toISOString();
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--until', later, '--timeout', '5m'], /cannot reach the Temporal server/);
  });

  test('the pipeline and llm flags are validated, each with its flag named', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    const start = ['start', '--repo', repo, '--tag', 't'];
    const llm = { ...UNREACHABLE, OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', AUTORESEARCH_MODEL: 'm' };
    await expectOneLine([...start, '--ahead=-1'], /--ahead: "-1" is not a whole number ≥ 0/);
    await expectOneLine([...start, '--rerun-grace', 'soon'], /--rerun-grace: "soon" is not a duration/);
    await expectOneLine([...start, '--max-proposer-failures', '0'], /--max-proposer-failures: "0" is not a whole number ≥ 1/);
    await expectOneLine([...start, '--history-size', 'lots'], /--history-size: "lots" is not a whole number ≥ 1/);
    await expectOneLine([...start, '--temperature', '2.5'], /--temperature: "2.5" is not a number from 0 to 2/, llm);
    await expectOneLine([...start, '--llm-max-tokens', '0'], /--llm-max-tokens: "0" is not a whole number ≥ 1/, llm);
    await expectOneLine([...start, '--proposer', 'sweep', '--temperature', '0.7'], /--temperature applies to the llm proposer only \(this run uses sweep\)/);
    await expectOneLine([...start, '--false-keep', '0.7'], /--false-keep: "0.7" is not a number from 0 to 0.5/);
    await expectOneLine([...start, '--false-keep', '0.01', '--confirm-z', '2'], /--false-keep replaces --confirm-z: give one of them/);
    // Valid values get past validation, as far as the (unreachable) server.
    const valid = ['--ahead', '0', '--rerun-grace', '30s', '--max-proposer-failures', '3', '--history-size', '10', '--temperature', '0', '--llm-max-tokens', '800', '--false-keep', '0.05'];
    await expectOneLine([...start, ...valid], /cannot reach the Temporal server/, llm);
  });

  test('the agent flags are validated: the command is needed, a variable is named by name, the limit is bounded', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    const agent = ['start', '--repo', repo, '--tag', 't', '--proposer', 'agent'];
    await expectOneLine(agent, /--proposer agent needs the agent's command: --agent "CMD"/);
    await expectOneLine(['start', '--repo', repo, '--tag', 't', '--agent', 'claude -p'], /--agent applies to the agent proposer only \(this run uses sweep; add --proposer agent\)/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-env', 'KEY=sk-123'], /--agent-env: "KEY=sk-123" is not a variable name \(give the name/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-timeout', '40m'], /--agent-timeout 40m is over the most an agent may take, 25m/);
    const valid = ['--agent', 'claude -p', '--agent-env', 'A,B', '--agent-env', 'C', '--agent-timeout', '5m', '--agent-network'];
    await expectOneLine([...agent, ...valid], /cannot reach the Temporal server/);
    // mixed takes its code changes from the agent where one is given: no endpoint or model needed then.
    const mixed = ['start', '--repo', repo, '--tag', 't', '--proposer', 'mixed'];
    await expectOneLine(mixed, /--proposer mixed needs OPENAI_API_KEY .*, or a coding agent: --agent CMD/);
    await expectOneLine([...mixed, '--agent-env', 'A'], /--proposer mixed needs OPENAI_API_KEY/);
    await expectOneLine([...mixed, '--agent', 'claude -p', '--temperature', '0.5'], /--temperature applies to the llm proposer only \(this run uses mixed with an agent\)/);
    await expectOneLine([...mixed, '--agent', 'claude -p'], /cannot reach the Temporal server/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-network-allow', '10.0.0.0/8'], /--agent-network-allow applies with --agent-network only/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-network', '--agent-network-allow', '10.0.0/8'], /--agent-network-allow: "10.0.0\/8" is not an IPv4 CIDR like 192.168.1.0\/24/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-network', '--agent-host-network'], /--agent-network and --agent-host-network exclude each other/);
    await expectOneLine([...agent, '--agent', 'claude -p', '--agent-network', '--agent-network-allow', '192.168.1.0/24'], /cannot reach the Temporal server/);
  });

  test('a Temporal profile that does not exist, or a malformed temporal.toml, is one line naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'temporal-config-'));
    const file = join(dir, 'temporal.toml');
    await writeFile(file, '[profile.default]\naddress = "127.0.0.1:1"\n');
    const noProfile = /cannot read the Temporal connection settings \(TEMPORAL_PROFILE=nope\) from .*temporal.toml: Profile 'nope' not found/;
    await expectOneLine(['status', 'x'], noProfile, { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'nope' });
    await writeFile(file, '[profile.default\naddress = "x"\n');
    await expectOneLine(['status', 'x'], new RegExp(`cannot read the Temporal connection settings from ${file}: illegal character in key`), { TEMPORAL_CONFIG_FILE: file });
  });
});

describe('the Web UI link', () => {
  test('comes from AUTORESEARCH_UI, else the local server\'s port + 1000, else start says how to set it', () => {
    assert.equal(webUiBase('localhost:7233', {}), 'http://localhost:8233');
    assert.equal(webUiBase('127.0.0.1:7300', {}), 'http://127.0.0.1:8300');
    assert.equal(webUiBase('0.0.0.0:7233', {}), 'http://localhost:8233');
    assert.equal(webUiBase('temporal.example.com:7233', {}), null, 'a remote server\'s UI may be anywhere');
    assert.equal(webUiBase('ns.a1b2c.tmprl.cloud:7233', { AUTORESEARCH_UI: 'https://cloud.temporal.io/' }), 'https://cloud.temporal.io');
    const config = {
      tag: 'x', repo: '/r', proposer: 'sweep' as const, editable: ['train.py'], command: 'python train.py',
      timeoutMs: 300_000, budgetSeconds: 240, parallel: 1, seed: 0, minImprovement: 0,
    };
    assert.match(startSummary('autoresearch-x', config, 'why', null, 'default'), /^web ui: +set AUTORESEARCH_UI to your Web UI's address \(e.g. http:\/\/host:8233\) for a link$/m);
  });
});

describe('help', () => {
  const VERBS = ['demo', 'server', 'worker', 'gpu-worker', 'init', 'start', 'status', 'pause', 'resume', 'stop', 'results', 'report', 'provision'];

  test('every verb takes --help and prints its own usage, doing nothing else', async () => {
    for (const verb of VERBS) {
      const { code, stdout, stderr } = await cli([verb, '--help'], UNREACHABLE);
      assert.equal(code, 0, `${verb} --help: ${stderr}`);
      assert.equal(stderr, '');
      assert.match(stdout, new RegExp(`^usage: npx autoresearch ${verb}\\b`), verb);
    }
    const server = await cli(['server', '--help']);
    assert.match(server.stdout, /^usage: npx autoresearch server \[--db FILE\] \[--port 7233\]/);
  });

  test('--help alone lists every verb', async () => {
    const { code, stdout } = await cli(['--help']);
    assert.equal(code, 0);
    for (const verb of VERBS) assert.match(stdout, new RegExp(`^  ${verb}\\b`, 'm'), verb);
  });
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

  test('start says how long each experiment trains, how the study ends, and links the Web UI on the server\'s own port', async () => {
    const repo = await makeRepo({ 'train.py': TRAIN });
    const [host, port] = env.address.split(':');
    const open = await cli(['start', '--repo', repo, '--tag', 'echo', '--proposer', 'sweep'], server);
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stdout, /^training: 240s of training per experiment, stopped at 5m \(--timeout\); 1 experiment at a time$/m);
    assert.match(open.stdout, /^ends: +never by itself: `npx autoresearch stop echo` ends it \(or start with --max-experiments N or --until 07:30\)$/m);
    assert.match(open.stdout, new RegExp(`^web ui: +http://${host}:${Number(port) + 1000}/namespaces/default/workflows/autoresearch-echo$`, 'm'));

    const capped = await cli(['start', '--repo', repo, '--tag', 'echo-capped', '--max-experiments', '12', '--timeout', '90s', '--parallel', '2'], {
      ...server, AUTORESEARCH_UI: 'https://ui.example:9999/', OPENAI_API_KEY: '', OPENAI_BASE_URL: '',
    });
    assert.equal(capped.code, 0, capped.stderr);
    assert.match(capped.stdout, /^training: 45s of training per experiment, stopped at 90s \(--timeout\); 2 experiments at a time$/m);
    assert.match(capped.stdout, /^ends: +after 12 experiments \(the baseline counts as one\)$/m);
    assert.match(capped.stdout, /^web ui: +https:\/\/ui.example:9999\/namespaces\/default\/workflows\/autoresearch-echo-capped$/m);
  });

  test('start on a namespace without the search attributes names them and the ways to register them, which work', async () => {
    await env.connection.workflowService.registerNamespace({ namespace: 'bare', workflowExecutionRetentionPeriod: msToTs('1 day') });
    const repo = await makeRepo({ 'train.py': TRAIN });
    const bare = { ...server, TEMPORAL_NAMESPACE: 'bare' };
    const start = ['start', '--repo', repo, '--tag', 'bare-run', '--proposer', 'sweep'];
    const missing = 'ResearchTag, BestValBpb, ExperimentsDone, ExperimentsKept, ExperimentStatus, ValBpb';
    const remedies = 'start `npx autoresearch worker` once \\(it registers them\\), or run `temporal operator .*`$';
    const line = await oneLine(start, new RegExp(`namespace bare lacks the search attributes ${missing}: ${remedies}`), bare);
    const commands = /or run `(.*)`$/.exec(line)![1].split(' && ');
    const create = (type: string) => `temporal operator search-attribute create --namespace bare --type ${type}`;
    assert.deepEqual(commands.map((c) => c.replace(/ --name .*/, '')), ['Keyword', 'Double', 'Int'].map(create));
    for (const command of commands) {
      const [, ...args] = command.split(' ');
      execFileSync(await temporalCli(), [...args, '--address', env.address]);
    }
    const started = await cli(start, bare);
    assert.equal(started.code, 0, started.stderr);
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

    // No worker is running: status still answers, from what the server knows, and says it is stale since when.
    const status = await cli(['status', 'twice', '--json'], server);
    assert.equal(status.code, 0, status.stderr);
    const view = JSON.parse(status.stdout);
    assert.deepEqual(Object.keys(view), ['tag', 'workflowId', 'state', 'experimentsDone', 'experimentsKept', 'best', 'inFlight', 'stale']);
    const { stale, ...rest } = view;
    assert.deepEqual(rest, { tag: 'twice', workflowId: 'autoresearch-twice', state: 'running', experimentsDone: 0, experimentsKept: 0, best: null, inFlight: [] });
    assert.match(stale.why, /^no control worker answered within 5s \(is `npx autoresearch worker` running\?\)/);
    const since = Date.parse(stale.since);
    assert.ok(since > Date.now() - 60_000 && since <= Date.now(), `stale since ${stale.since}: the run's last event, at its start`);
    const text = await cli(['status', 'twice'], server);
    assert.match(text.stdout, /^stale: +since \d\d:\d\d:\d\d \(\d+s ago\): no control worker answered/m);
  });
});
