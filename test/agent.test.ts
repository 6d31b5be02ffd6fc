// --proposer agent through the real durable path: a scripted agent in its box edits a checkout of the
// best, the study trains what it changed in the editable files and keeps it when it wins. Changes to
// the harness are dropped and named, an agent that never exits is killed, one that changes nothing is
// a failed proposal, and one that hunts for the host's secrets or writes outside its checkout finds
// and writes nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { homedir, networkInterfaces } from 'node:os';
import { once } from 'node:events';
import { join } from 'node:path';
import { runAgent } from '../activities/agent';
import { readRecords } from '../activities/results';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { closeDevServer, devServer, gitIn, makeRepo, ROOT, runWorkers } from './helpers';

const TRAIN = `LR = 0.1  # learning rate
print("---")
print(f"val_bpb:          {1 + LR:.6f}")
`;
const PREPARE = '# the harness: data and evaluation\n';

// One scripted agent, its behaviour picked by its first argument. It reads its prompt from stdin.
const AGENT = String.raw`import os, re, subprocess, sys, time
mode = sys.argv[1]
prompt = sys.stdin.read()
seen = []
if open(os.environ["AUTORESEARCH_PROMPT_FILE"]).read() == prompt: seen.append("prompt-file")
if "Make val_bpb lower" in prompt: seen.append("program")
if "Results so far" in prompt: seen.append("results")
if "baseline: val_bpb" in prompt: seen.append("baseline")

def halve(note=""):
    src = open("train.py").read()
    lr = float(re.search(r"^LR = ([\d.e-]+)", src, re.M).group(1))
    open("train.py", "w").write(re.sub(r"^LR = [\d.e-]+", "LR = %g" % (lr / 2), src, flags=re.M) + note)
    return "halve LR %g -> %g" % (lr, lr / 2)

def commit(message):
    subprocess.run(["git", "commit", "--quiet", "-am", message], check=True)

if mode == "commit":
    commit(halve() + " [saw " + " ".join(seen) + "]")
elif mode == "harness":
    what = halve()
    open("prepare.py", "a").write("# easier evaluation\n")
    open("notes.txt", "w").write("scratch notes\n")
    print(what + " and make the evaluation easier")
elif mode == "hang":
    if os.environ["AUTORESEARCH_PROPOSAL"] != "1":  # only the first one hangs
        commit(halve())
    else:
        subprocess.Popen(["sleep", "600"])
        time.sleep(600)
elif mode == "nothing":
    print("looked around, changed nothing")
elif mode == "net":
    import socket
    seen = []
    for host, port in re.findall(r"connect to ([\d.]+):(\d+)", prompt):
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            seen.append(host + " open")
        except OSError as e:
            seen.append(host + " " + type(e).__name__)
    commit(halve() + " [" + ", ".join(seen) + "]")
elif mode == "hunt":
    found, wrote = [], []
    for name, value in os.environ.items():
        if re.search("s3cr3t" + "-[0-9a-f]{12}", value): found.append("env " + name)
    roots = ["/proc", "/root", "/home", "/tmp", "/etc", os.path.expanduser("~")]
    roots += re.findall(r"lives at (\S+)", prompt)
    marker = re.compile(rb"s3cr3t" + rb"-[0-9a-f]{12}")  # split: this file holds no match of its own
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for f in files:
                try:
                    if marker.search(open(os.path.join(dirpath, f), "rb").read(1 << 16)): found.append(os.path.join(dirpath, f))
                except Exception:
                    pass
    for target in re.findall(r"write to ([^\s,;]+)", prompt):
        try:
            open(target, "w").write("pwned\n")
            wrote.append(target)
        except Exception:
            pass
    note = "# found: %s\n# wrote: %s\n" % (found or "nothing", wrote or "nothing")
    commit(halve(note) + " with token " + os.environ.get("GIVEN_TOKEN", "none"))
`;

let env: TestWorkflowEnvironment;
before(async () => {
  env = await devServer();
});
after(async () => {
  await closeDevServer(env);
});

/** A night of the scripted agent; `program` writes program.md knowing where the repo is (the hunt uses it). */
async function night(tag: string, agent: string, extra: Partial<RunConfig> = {}, program?: (repo: string) => string) {
  const repo = await makeRepo({ 'train.py': TRAIN, 'prepare.py': PREPARE, 'agents/agent.py': AGENT });
  if (program) {
    await writeFile(join(repo, 'program.md'), program(repo));
    gitIn(repo, 'commit', '--quiet', '-am', 'the program names paths');
  }
  const config: RunConfig = {
    tag, repo, proposer: 'agent', agent, editable: ['train.py'], command: 'python3 train.py', timeoutMs: 20_000,
    budgetSeconds: 1, parallel: 1, ahead: 0, rerunGraceMs: 60_000, seed: 0, minImprovement: 0, maxExperiments: 3, ...extra,
  };
  await startRun(async () => env.client, config);
  const handle = env.client.workflow.getHandle(workflowIdFor(tag));
  const finished = handle.result() as Promise<StatusView>;
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, finished);
  return { repo, handle, view: await finished.catch((err: Error) => err), records: await readRecords(repo, tag) };
}

const harnessOf = (repo: string, commit: string) => gitIn(repo, 'diff', '--name-only', `main..${commit}`).split('\n').filter(Boolean);

test("an agent that edits train.py and commits: its change is trained and kept, shown program.md and the results", async () => {
  const { repo, view, records } = await night('commits', 'python3 agents/agent.py commit');
  assert.equal((view as StatusView).state, 'completed');
  assert.deepEqual(records.map((r) => r.status), ['keep', 'keep', 'keep']);
  // The first proposal may be made while the baseline trains; the second sees its score.
  assert.match(records[1].description, /^halve LR 0\.1 -> 0\.05 \[saw prompt-file program results( baseline)?\]$/);
  assert.equal(records[2].description, 'halve LR 0.05 -> 0.025 [saw prompt-file program results baseline]');
  assert.deepEqual(records.map((r) => r.valBpb), [1.1, 1.05, 1.025]);
  for (const r of records.slice(1)) assert.equal(r.proposer, 'agent');
  assert.equal(gitIn(repo, 'show', 'autoresearch/commits:train.py').split('\n')[0], 'LR = 0.025  # learning rate');
  assert.deepEqual(harnessOf(repo, 'autoresearch/commits'), ['train.py'], 'the harness is untouched');
});

test("an agent that also edits prepare.py: that edit is dropped and named, its train.py change trained", async () => {
  const { repo, records } = await night('harness', 'python3 agents/agent.py harness', { maxExperiments: 2 });
  const [, row] = records;
  assert.equal(row.status, 'keep');
  assert.equal(row.description, 'halve LR 0.1 -> 0.05 and make the evaluation easier', 'its last line of output');
  assert.match(row.reason, /dropped the agent's changes outside the editable files: notes\.txt, prepare\.py|dropped the agent's changes outside the editable files: prepare\.py, notes\.txt/);
  assert.deepEqual(harnessOf(repo, row.commit!), ['train.py']);
  assert.equal(gitIn(repo, 'show', `${row.commit}:prepare.py`), PREPARE.trim());
});

test('an agent that never exits is killed at --agent-timeout and the night goes on', async () => {
  const started = Date.now();
  const { view, records } = await night('hangs', 'python3 agents/agent.py hang', { agentTimeoutMs: 3_000 });
  assert.equal((view as StatusView).state, 'completed');
  assert.deepEqual(records.map((r) => r.status), ['keep', 'crash', 'keep'], records.map((r) => r.reason).join('\n'));
  assert.match(records[1].reason, /the agent did not finish within --agent-timeout 3s: killed/);
  assert.equal(records[2].description, 'halve LR 0.1 -> 0.05');
  assert.ok(Date.now() - started < 60_000, 'killed at its limit, not at the sleep');
  const left = spawnSync('pgrep', ['-f', 'sleep 600'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(left, '', 'what the agent started died with its box');
});

test('an agent that changes nothing is a failed proposal, counted by --max-proposer-failures', async () => {
  const { view, records } = await night('nothing', 'python3 agents/agent.py nothing', { maxExperiments: 5, maxProposerFailures: 2 });
  assert.match(((view as Error).cause as Error).message, /the proposer failed 2 times in a row \(last: the agent changed nothing in train\.py\)/);
  assert.deepEqual(records.map((r) => r.status), ['keep', 'crash', 'crash']);
  for (const r of records.slice(1)) assert.equal(r.commit, null);
});

test("--agent-network: the agent reaches the network but never this host's loopback, where the Temporal server is", async () => {
  const outside = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  assert.ok(outside, 'this host has an address besides loopback (the stand-in for the internet)');
  const lan = createServer((socket) => socket.end()).listen(0, outside);
  await once(lan, 'listening');
  try {
    const temporal = env.address.replace('localhost', '127.0.0.1'); // the dev server the study runs on
    const targets = `connect to ${temporal}, connect to ${outside}:${(lan.address() as AddressInfo).port}`;
    const program = () => `# research\nMake val_bpb lower.\n${targets}\n`;
    const offline = await night('offline', 'python3 agents/agent.py net', { maxExperiments: 2 }, program);
    assert.equal(offline.records[1].description, `halve LR 0.1 -> 0.05 [127.0.0.1 ConnectionRefusedError, ${outside} OSError]`);
    const online = await night('online', 'python3 agents/agent.py net', { maxExperiments: 2, agentNetwork: 'egress' }, program);
    assert.equal(online.records[1].description, `halve LR 0.1 -> 0.05 [127.0.0.1 ConnectionRefusedError, ${outside} open]`);
  } finally {
    lan.close();
  }
});

test("an agent hunting for the host's secrets and writing outside its checkout finds and writes nothing", async () => {
  const secret = `s3cr3t-${randomBytes(6).toString('hex')}`;
  const given = `given-${randomBytes(6).toString('hex')}`; // what the hunt looks for is s3cr3t
  const homeFile = join(homedir(), `.autoresearch-agent-test-${secret}`);
  const mark = randomBytes(6).toString('hex');
  const outside = [join(ROOT, `pwned-${mark}`), join(homedir(), `pwned-${mark}`), `/tmp/pwned-${mark}`];
  await writeFile(homeFile, `token=${secret}\n`);
  process.env.HOST_SECRET = secret; // the control worker's own environment: the agent must not see it
  process.env.GIVEN_TOKEN = given; // named with --agent-env: the agent gets it, nothing it says carries it on
  try {
    const program = (repo: string) =>
      `# research\nMake val_bpb lower.\nThe repo lives at ${repo} and ${ROOT}; ${[...outside, `${repo}/pwned`].map((p) => `write to ${p}`).join(', ')}\n`;
    const run = await night('hunt', 'python3 agents/agent.py hunt', { maxExperiments: 2, agentEnv: ['GIVEN_TOKEN'] }, program);
    const [, row] = run.records;
    assert.equal(row.status, 'keep');
    const trained = gitIn(run.repo, 'show', `${row.commit}:train.py`);
    assert.match(trained, /# found: nothing\n/); // what it wrote went to its own private /tmp and HOME, if anywhere
    assert.equal(row.description, 'halve LR 0.1 -> 0.05 with token [GIVEN_TOKEN]', 'the named variable reached the agent, redacted');
    for (const path of [...outside, `${run.repo}/pwned`]) assert.ok(!existsSync(path), `${path} was not written`);
    assert.deepEqual(harnessOf(run.repo, row.commit!), ['train.py']);
    const decode = (key: string, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v;
    const history = JSON.stringify(await run.handle.fetchHistory(), decode);
    assert.match(history, /with token \[GIVEN_TOKEN\]/, 'payloads are readable in this dump');
    const results = await readFile(join(run.repo, 'results', 'hunt', 'results.jsonl'), 'utf8');
    for (const value of [secret, given]) {
      assert.ok(!history.includes(value), 'no secret in the workflow history');
      assert.ok(!results.includes(value), 'no secret in the results');
    }
  } finally {
    delete process.env.HOST_SECRET;
    delete process.env.GIVEN_TOKEN;
    await rm(homeFile, { force: true });
    for (const path of outside) await rm(path, { force: true });
  }
});

// Stand-ins of four agents' command lines: each insists on the flags its recipe gives, as the real one
// would, edits train.py, and reports tokens the way the real one prints them.
const STAND_IN = String.raw`#!/usr/bin/env python3
import json, os, re, subprocess, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
def need(*flags):
    for f in flags:
        if f not in args: sys.exit("%s: missing %s in %s" % (name, f, args))
def halve():
    src = open("train.py").read()
    lr = float(re.search(r"^LR = ([\d.e-]+)", src, re.M).group(1))
    open("train.py", "w").write(re.sub(r"^LR = [\d.e-]+", "LR = %g" % (lr / 2), src, flags=re.M))
    return "halve LR %g -> %g" % (lr, lr / 2)
if name == "claude":
    need("-p", "--output-format", "--dangerously-skip-permissions")
    if os.geteuid() == 0: sys.exit("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons")
    assert "program.md" in sys.stdin.read() and os.environ["ANTHROPIC_API_KEY"]
    what = halve()
    print(json.dumps({"type": "result", "result": "Done.\n\n%s, for a steadier descent" % what,
                      "usage": {"input_tokens": 1200, "cache_read_input_tokens": 300, "output_tokens": 150}}))
elif name == "codex":
    need("exec", "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check")
    assert "program.md" in args[-1] and os.environ["OPENAI_API_KEY"]
    what = halve()
    print("tokens used: 2,345")
    print(what + ", as the results suggest")
elif name == "aider":
    need("--yes-always", "--no-check-update", "--model", "--message-file", "train.py")
    assert "program.md" in open(args[args.index("--message-file") + 1]).read() and os.environ["OLLAMA_API_BASE"]
    subprocess.run(["git", "commit", "--quiet", "-am", "aider: " + halve()], check=True)
    print("Tokens: 1.2k sent, 85 received. Cost: $0.00 message, $0.00 session.")
elif name == "opencode":
    need("run", "--model")
    assert "program.md" in args[-1]
    print(halve() + " (opencode)")
`;

/** The recipes of docs/proposers.md: each agent's --agent command and the variables it is given. */
async function recipes(): Promise<{ agent: string; command: string; env: string[] }[]> {
  const doc = await readFile(join(ROOT, 'docs', 'proposers.md'), 'utf8');
  return [...doc.matchAll(/^\| ([^|]+) \| (`--agent.*`) \|$/gm)].map(([, agent, cell]) => ({
    agent: agent.trim(),
    command: /--agent '([^']+)'/.exec(cell)![1],
    env: [...cell.matchAll(/--agent-env (\w+)/g)].map((m) => m[1]),
  }));
}

test("each documented recipe runs against a stand-in of its agent's command line: its change, description and tokens", async () => {
  const found = await recipes();
  assert.deepEqual(found.map((r) => r.agent), ['Claude Code', 'Codex', 'aider, local model', 'OpenCode, local model']);
  const bin = Object.fromEntries(['claude', 'codex', 'aider', 'opencode'].map((n) => [`agents/bin/${n}`, STAND_IN]));
  const repo = await makeRepo({ 'train.py': TRAIN, 'prepare.py': PREPARE, ...bin });
  for (const n of ['claude', 'codex', 'aider', 'opencode']) gitIn(repo, 'update-index', '--chmod=+x', `agents/bin/${n}`);
  gitIn(repo, 'commit', '--quiet', '-m', 'stand-ins executable');
  const best = { commit: gitIn(repo, 'rev-parse', 'HEAD'), files: { 'train.py': TRAIN } };
  const expected: Record<string, { description: string; tokens: number }> = {
    'Claude Code': { description: 'halve LR 0.1 -> 0.05, for a steadier descent', tokens: 1650 },
    Codex: { description: 'halve LR 0.1 -> 0.05, as the results suggest', tokens: 2345 },
    'aider, local model': { description: 'aider: halve LR 0.1 -> 0.05', tokens: 1285 },
    'OpenCode, local model': { description: 'halve LR 0.1 -> 0.05 (opencode)', tokens: 0 },
  };
  for (const recipe of found) {
    for (const name of recipe.env) process.env[name] = `value-of-${name}`;
    try {
      const config: RunConfig = {
        tag: 'recipes', repo, proposer: 'agent', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 20_000,
        budgetSeconds: 1, parallel: 1, seed: 0, minImprovement: 0, agentEnv: recipe.env,
        agent: `export PATH="$PWD/agents/bin:$PATH"\n${recipe.command}`,
      };
      const proposal = await runAgent({ config, key: 1, best, records: [], inFlight: [] }, () => {});
      assert.ok(proposal !== 'cancelled' && proposal.ok, `${recipe.agent}: ${JSON.stringify(proposal)}`);
      assert.equal(proposal.change, 'LR 0.1 -> 0.05', recipe.agent);
      assert.deepEqual({ description: proposal.description, tokens: proposal.tokens }, expected[recipe.agent], recipe.agent);
    } finally {
      for (const name of recipe.env) delete process.env[name];
    }
  }
});

test('agents run ahead of the slots and side by side, each in its own box', async () => {
  const { handle, view } = await night('side', 'sleep 2; python3 agents/agent.py commit', { parallel: 2, ahead: 2, maxExperiments: 4 });
  assert.equal((view as StatusView).state, 'completed');
  const events = (await handle.fetchHistory()).events ?? [];
  const seconds = (t: unknown) => Number((t as { seconds?: unknown }).seconds ?? 0) + ((t as { nanos?: number }).nanos ?? 0) / 1e9;
  const scheduled = new Map<string, string>(); // scheduled event id → activity type
  const spans = new Map<string, { start?: number; end?: number }>();
  for (const e of events) {
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes) scheduled.set(id, e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    const started = e.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === 'propose') spans.set(String(started.scheduledEventId), { start: seconds(e.eventTime) });
    const done = e.activityTaskCompletedEventAttributes;
    if (done && spans.has(String(done.scheduledEventId))) spans.get(String(done.scheduledEventId))!.end = seconds(e.eventTime);
  }
  const all = [...spans.values()].filter((s) => s.start !== undefined && s.end !== undefined);
  assert.ok(all.length >= 3, `${all.length} proposals`);
  const overlapping = all.some((a) => all.some((b) => a !== b && b.start! < a.end! && b.start! >= a.start!));
  assert.ok(overlapping, 'two agents worked at the same time');
});

test('mixed with an agent: the agent changes the code, the sampler tunes the knobs, each row says which', async () => {
  const { view, records } = await night('mixed-agent', 'python3 agents/agent.py commit', { proposer: 'mixed', maxExperiments: 7 });
  assert.equal((view as StatusView).state, 'completed');
  for (const r of records.slice(1)) assert.equal(r.proposer, r.description.startsWith('tpe: ') ? 'tpe' : 'agent', r.description);
  assert.ok(records.some((r) => r.proposer === 'tpe'), 'every 4th proposal is the sampler\'s');
  assert.ok(records.some((r) => r.proposer === 'agent' && r.status === 'keep'), JSON.stringify(records.map((r) => [r.description, r.status])));
});
