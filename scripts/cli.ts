// `npx autoresearch <verb>`: a thin layer over the modules that do the work. Each verb imports what it
// needs when it runs, so `--help` or `status` never loads the worker's native addon, webpack or Vega.
import type { NativeConnection } from '@temporalio/worker';
import { resolve } from 'node:path';
import { CONTROL_QUEUE } from '../workflows/types';
import { parseCidrs, parseCount, parseFlags, parseSize, required } from './args';
import { UserError } from './errors';
import type { Network } from '../gpu-worker/sandbox';

/** Each verb's arguments and what it does: `--help` prints them all, `<verb> --help` its own. */
const USAGE: Record<string, { args: string; about: string }> = {
  demo: { args: '', about: 'a short study on the tiny target, end to end (npm start)' },
  server: {
    args: '[--db FILE] [--port 7233] [--ui-port PORT+1000]',
    about: 'the local Temporal dev server and Web UI, history in a SQLite file',
  },
  worker: { args: '', about: 'the control worker (proposals, git, results); registers the search attributes' },
  'gpu-worker': {
    args: '--repo PATH [--slots N | --gpus 0,1 | --gpus all] [--network [--network-allow CIDR,...] | --host-network] [--no-sandbox] [--memory-limit SIZE] [--process-limit N] [--file-size-limit SIZE]',
    about: 'training slots for the runs on that repo',
  },
  init: { args: '--target tiny PATH', about: 'a research repo from a shipped target, data prepared' },
  'try-model': {
    args: '--model NAME [--experiments 3] [--repo PATH] [--temperature X] [--llm-max-tokens N] [--llm-timeout 10m]',
    about: 'before a night: a few proposals on a scratch copy, with parse rate, crash rate, latency, tokens, verdict',
  },
  start: {
    args: [
      '--repo PATH --tag TAG [--proposer llm|sweep|tpe|cmaes|mixed|agent] [--model NAME] [--max-experiments N] [--until 07:30]',
      '[--timeout 5m] [--budget SECONDS] [--parallel P] [--ahead N] [--rerun-grace 1s] [--command CMD] [--editable a.py,b.py] [--seed N]',
      '[--min-improvement X] [--max-proposer-failures N] [--history-size N]',
      '[--baseline-runs 5] [--false-keep 0.01] [--verify-runs 3]',
      '[--temperature X] [--llm-max-tokens N] [--max-tokens-total N] [--llm-timeout 10m]',
      '[--agent CMD] [--agent-env NAME]... [--agent-timeout 10m] [--agent-network [--agent-network-allow CIDR,...] | --agent-host-network]',
    ].join('\n        '),
    about: 'start a study',
  },
  status: { args: 'TAG [--json] [--watch]', about: 'state, best, counts, experiments in flight' },
  pause: { args: 'TAG', about: 'experiments in flight finish, nothing new starts' },
  resume: { args: 'TAG', about: 'go on after a pause' },
  stop: { args: 'TAG [--cancel]', about: 'finish (or cancel) the experiments in flight, then end the run' },
  results: { args: 'TAG [--repo PATH]', about: 'the results table' },
  report: { args: 'TAG [--repo PATH]', about: 'a progress chart (SVG, PNG) and a summary, written to results/TAG/report/' },
  verify: { args: 'TAG [--runs 3]', about: "the night's gain: the baseline and the best trained again, with a 95% interval" },
  ablate: { args: 'TAG [--runs 3]', about: 'what each kept change is worth: the best trained without it, with intervals' },
  sensitivity: {
    args: 'TAG [--knobs A,B] [--points 5] [--runs 3] [--json]',
    about: 'the best trained with each knob moved along a grid: which knobs matter, leads for the next night',
  },
  compare: {
    args: '--repo PATH REF REF... [--tag compare] [--runs 5] [--parallel P] [--timeout 5m] [--budget SECONDS]\n        [--command CMD] [--editable a.py,b.py] [--json]',
    about: 'refs trained side by side on the same seeds: intervals, pairwise verdicts (Holm), a ranking',
  },
  provision: { args: '', about: 'find or fetch the Temporal CLI, and make the Python environment' },
};

const ABOUT_COLUMN = 42;

function usage(verb?: string): string {
  if (verb && USAGE[verb]) return `usage: npx autoresearch ${`${verb} ${USAGE[verb].args}`.trimEnd()}\n  ${USAGE[verb].about}`;
  const lines = Object.entries(USAGE).map(([name, { args, about }]) => {
    const head = `  ${name} ${args}`.trimEnd();
    const room = ABOUT_COLUMN - head.split('\n').at(-1)!.length;
    return room > 0 ? `${head}${' '.repeat(room)}${about}` : `${head}\n${' '.repeat(ABOUT_COLUMN)}${about}`;
  });
  return `usage: npx autoresearch <verb>   (npx autoresearch <verb> --help: that verb alone)\n${lines.join('\n')}`;
}

type Verb = (argv: string[]) => Promise<void>;

function oneTag(verb: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UserError(`${verb}: expected one TAG`);
  return positionals[0];
}

/** Runs a worker until SIGINT/SIGTERM (the SDK's own shutdown also cancels in-flight training). */
async function serveWorkers(connection: NativeConnection, make: () => Promise<{ run(): Promise<void> }[]>): Promise<void> {
  const workers = await make();
  await Promise.all(workers.map((w) => w.run()));
  await connection.close();
}

async function connectedClient() {
  const { connectClient } = await import('./connect');
  return connectClient();
}

const verbs: Record<string, Verb> = {
  async demo(argv) {
    parseFlags('demo', argv, {});
    await (await import('./demo')).demo();
  },

  async provision(argv) {
    parseFlags('provision', argv, {});
    await (await import('./provision')).provision();
  },

  async server(argv) {
    const { startDevServer } = await import('./server');
    const { flags } = parseFlags('server', argv, { db: { type: 'string' }, port: { type: 'string' }, 'ui-port': { type: 'string' } });
    const port = flags.port === undefined ? 7233 : parseCount('--port', flags.port as string);
    const uiPort = flags['ui-port'] === undefined ? port + 1000 : parseCount('--ui-port', flags['ui-port'] as string);
    const db = resolve((flags.db as string | undefined) ?? '.autoresearch/temporal.db');
    const server = await startDevServer({ db, port, uiPort });
    console.log(`temporal server: ${server.address}\nweb ui:          ${server.uiUrl}\nhistory:         ${db}`);
    console.log('(Ctrl-C stops it; start it again on the same file to resume)');
    const stop = () => void server.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await new Promise((done) => server.child.once('exit', done));
  },

  async worker(argv) {
    parseFlags('worker', argv, {});
    const { Connection } = await import('@temporalio/client');
    const { createControlWorker } = await import('../activities/worker');
    const { connectWorker, temporalTarget } = await import('./connect');
    const { registerSearchAttributes } = await import('./server');
    const target = temporalTarget();
    const connection = await connectWorker(target);
    const client = await Connection.connect(target.options);
    await registerSearchAttributes(client, target.namespace).catch((err) =>
      console.warn(`could not register search attributes: ${(err as Error).message}`),
    );
    await client.close();
    console.log(`control worker: task queue ${CONTROL_QUEUE} on ${target.address} (${target.namespace})`);
    await serveWorkers(connection, async () => [await createControlWorker(connection, target.namespace, (line) => console.log(line))]);
  },

  async 'gpu-worker'(argv) {
    const { createGpuWorker, detectGpus, gpuQueueOf, slotsFor } = await import('../gpu-worker/worker'); // lazy imports: see the top
    const { egressProblem, sandboxProblem } = await import('../gpu-worker/sandbox');
    const { describeLimits } = await import('../gpu-worker/limits');
    const { pythonEnv } = await import('./provision');
    const { connectWorker, temporalTarget } = await import('./connect');
    if (argv.includes('--no-network')) throw new UserError('gpu-worker: --no-network is gone: trainings have no network unless --network');
    const { flags } = parseFlags('gpu-worker', argv, {
      repo: { type: 'string' }, slots: { type: 'string' }, gpus: { type: 'string' },
      network: { type: 'boolean' }, 'network-allow': { type: 'string' }, 'host-network': { type: 'boolean' }, 'no-sandbox': { type: 'boolean' },
      'memory-limit': { type: 'string' }, 'process-limit': { type: 'string' }, 'file-size-limit': { type: 'string' },
    });
    const checkout = resolve(required(flags, 'repo', 'gpu-worker'));
    const gpus = flags.gpus === 'all' ? detectGpus() : (flags.gpus as string | undefined)?.split(',').map((g) => g.trim());
    if (gpus?.length === 0) throw new UserError('--gpus all: nvidia-smi lists no GPU on this host; train on CPU with --slots N');
    if (gpus && gpus.some((g) => !/^\d+$/.test(g))) throw new UserError(`--gpus: "${flags.gpus}" is not a list of GPU indexes like 0,1 (or all)`);
    if (gpus && flags.slots !== undefined) throw new UserError('gpu-worker: --gpus and --slots exclude each other (one slot per GPU)');
    const slots = flags.slots === undefined ? 1 : parseCount('--slots', flags.slots as string);
    const sandbox = !flags['no-sandbox'];
    if (flags.network && flags['host-network']) throw new UserError('gpu-worker: --network and --host-network exclude each other');
    const network: Network = flags.network ? 'egress' : flags['host-network'] ? 'host' : 'none';
    const networkAllow = parseCidrs('--network-allow', flags['network-allow'] as string | undefined, network === 'egress' ? null : '--network');
    const flag = (name: string) => flags[name] as string | undefined;
    const limits = {
      memoryBytes: flag('memory-limit') === undefined ? undefined : parseSize('--memory-limit', flag('memory-limit')!),
      processes: flag('process-limit') === undefined ? undefined : parseCount('--process-limit', flag('process-limit')!, 16),
      fileBytes: flag('file-size-limit') === undefined ? undefined : parseSize('--file-size-limit', flag('file-size-limit')!),
    };
    const problem = sandbox ? sandboxProblem() ?? (network === 'egress' ? egressProblem('--network', '--host-network') : null) : null;
    if (problem) throw new UserError(`gpu-worker: ${problem}`);
    if (!sandbox) console.log("warning: --no-sandbox: proposed code runs unconfined, as this user, with this host's files and network");
    const taskQueue = await gpuQueueOf(checkout);
    const pathPrefix = await pythonEnv();
    const target = temporalTarget();
    const connection = await connectWorker(target);
    const opts = { checkout, slots, gpus, pathPrefix, sandbox, network, networkAllow, limits, log: console.log };
    const worker = await createGpuWorker(connection, target.namespace, opts);
    console.log(`gpu worker: ${slotsFor(opts).length} slot(s) on task queue ${taskQueue} at ${target.address}, checkout ${checkout}`);
    const reach = { none: 'without network access', egress: "with network access but not this host's loopback", host: "sharing this host's network, loopback included" };
    const box = sandbox ? `in a sandbox, ${reach[network]}` : 'without a sandbox';
    console.log(`training commands run ${box}, with ${pathPrefix} first on PATH`);
    console.log(describeLimits(slotsFor(opts)[0].limits!, sandbox));
    await serveWorkers(connection, async () => [worker]);
  },

  async init(argv) {
    const { flags, positionals } = parseFlags('init', argv, { target: { type: 'string' } });
    if (positionals.length !== 1) throw new UserError('init: expected one PATH (npx autoresearch init --target tiny PATH)');
    const { initRepo, nextSteps } = await import('./init');
    const repo = await initRepo((flags.target as string | undefined) ?? 'tiny', positionals[0]);
    console.log(nextSteps(repo));
  },

  async 'try-model'(argv) {
    const { TRY_MODEL_OPTIONS, tryModelCommand } = await import('./try-model');
    const { flags, positionals } = parseFlags('try-model', argv, TRY_MODEL_OPTIONS);
    if (positionals.length) throw new UserError(`try-model: unexpected argument "${positionals[0]}"`);
    await tryModelCommand(flags);
  },

  async start(argv) {
    const { runConfigFrom, START_OPTIONS, startRun, startSummary } = await import('./runs');
    const { connectClient, temporalTarget, webUiBase } = await import('./connect');
    const { flags, positionals } = parseFlags('start', argv, START_OPTIONS);
    if (positionals.length) throw new UserError(`start: unexpected argument "${positionals[0]}"`);
    const { config, why } = await runConfigFrom(flags);
    const target = temporalTarget();
    const workflowId = await startRun(() => connectClient(target), config);
    console.log(startSummary(workflowId, config, why, webUiBase(target.address), target.namespace));
  },

  async status(argv) {
    const { flags, positionals } = parseFlags('status', argv, { json: { type: 'boolean' }, watch: { type: 'boolean' } });
    const tag = oneTag('status', positionals);
    const { fetchStatus, statusJson, watchStatus } = await import('./status');
    const { DEFAULT_WATCH_WIDTH, renderWatch } = await import('./watch');
    const client = await connectedClient();
    if (flags.watch) return watchStatus(client, tag);
    const view = await fetchStatus(client, tag);
    console.log(flags.json ? statusJson(view) : renderWatch(view, process.stdout.columns ?? DEFAULT_WATCH_WIDTH));
  },

  async pause(argv) {
    const tag = oneTag('pause', parseFlags('pause', argv, {}).positionals);
    await (await import('./runs')).pauseRun(await connectedClient(), tag);
    console.log(`pausing ${tag}: experiments in flight finish, nothing new starts`);
  },

  async resume(argv) {
    const tag = oneTag('resume', parseFlags('resume', argv, {}).positionals);
    await (await import('./runs')).resumeRun(await connectedClient(), tag);
    console.log(`resumed ${tag}`);
  },

  async stop(argv) {
    const { flags, positionals } = parseFlags('stop', argv, { cancel: { type: 'boolean' } });
    const tag = oneTag('stop', positionals);
    await (await import('./runs')).stopRun(await connectedClient(), tag, Boolean(flags.cancel));
    console.log(`stopping ${tag}: ${flags.cancel ? 'cancelling' : 'finishing'} the experiments in flight`);
  },

  async results(argv) {
    const { flags, positionals } = parseFlags('results', argv, { repo: { type: 'string' } });
    const tag = oneTag('results', positionals);
    const { repoOf, resultsTable } = await import('./status');
    console.log(await resultsTable(await repoOf(connectedClient, tag, flags.repo as string | undefined), tag));
  },

  async report(argv) {
    const { flags, positionals } = parseFlags('report', argv, { repo: { type: 'string' } });
    const tag = oneTag('report', positionals);
    const { repoOf } = await import('./status');
    const { reportLines, writeReport } = await import('./report');
    const repo = await repoOf(connectedClient, tag, flags.repo as string | undefined);
    console.log(reportLines(await writeReport(repo, tag)));
  },

  async verify(argv) {
    const { flags, positionals } = parseFlags('verify', argv, { runs: { type: 'string' } });
    const tag = oneTag('verify', positionals);
    const { DEFAULT_MORNING_RUNS, verifyRun } = await import('./morning');
    const runs = flags.runs === undefined ? DEFAULT_MORNING_RUNS : parseCount('--runs', flags.runs as string, 2);
    console.log(`verifying ${tag}: the baseline and the best, ${runs} trainings each, interleaved`);
    const verdict = await verifyRun(await connectedClient(), tag, runs);
    console.log(`verdict: ${verdict.line}`);
  },

  async ablate(argv) {
    const { flags, positionals } = parseFlags('ablate', argv, { runs: { type: 'string' } });
    const tag = oneTag('ablate', positionals);
    const { DEFAULT_MORNING_RUNS, ablateRun, ablationLines } = await import('./morning');
    const runs = flags.runs === undefined ? DEFAULT_MORNING_RUNS : parseCount('--runs', flags.runs as string, 2);
    console.log(`ablating ${tag}: the best without each kept change, ${runs} trainings each`);
    const ablation = await ablateRun(await connectedClient(), tag, runs);
    for (const line of ablationLines(ablation)) console.log(line);
  },

  async sensitivity(argv) {
    const options = { runs: { type: 'string' }, knobs: { type: 'string' }, points: { type: 'string' }, json: { type: 'boolean' } } as const;
    const { flags, positionals } = parseFlags('sensitivity', argv, options);
    const tag = oneTag('sensitivity', positionals);
    const { DEFAULT_MORNING_RUNS, DEFAULT_POINTS, sensitivityRun, sensitivityLines } = await import('./morning');
    const runs = flags.runs === undefined ? DEFAULT_MORNING_RUNS : parseCount('--runs', flags.runs as string, 2);
    const points = flags.points === undefined ? DEFAULT_POINTS : parseCount('--points', flags.points as string, 2);
    const knobs = (flags.knobs as string | undefined)?.split(',').map((k) => k.trim()).filter(Boolean) ?? null;
    if (knobs?.length === 0) throw new UserError('--knobs: name at least one knob (e.g. --knobs LEARNING_RATE,WEIGHT_DECAY)');
    if (!flags.json) console.log(`sensitivity of ${tag}: ${knobs?.join(', ') ?? 'every knob'} at ${points} values, ${runs} trainings each`);
    const sensitivity = await sensitivityRun(await connectedClient(), tag, { runs, knobs, points });
    console.log(flags.json ? JSON.stringify(sensitivity, null, 2) : sensitivityLines(sensitivity).join('\n'));
  },

  async compare(argv) {
    const { COMPARE_OPTIONS, runConfigFrom } = await import('./runs');
    const { flags, positionals } = parseFlags('compare', argv, { ...COMPARE_OPTIONS, runs: { type: 'string' }, json: { type: 'boolean' } });
    const { DEFAULT_COMPARE_RUNS, compareRun, comparisonLines } = await import('./morning');
    const runs = flags.runs === undefined ? DEFAULT_COMPARE_RUNS : parseCount('--runs', flags.runs as string, 2);
    const { config } = await runConfigFrom({ ...flags, tag: flags.tag ?? 'compare', proposer: 'sweep' }, process.env, 'compare');
    if (!flags.json) console.log(`comparing ${positionals.join(', ')}: ${runs} trainings each, on the same seeds, interleaved`);
    const comparison = await compareRun(await connectedClient(), { config, runs, refs: positionals });
    console.log(flags.json ? JSON.stringify(comparison, null, 2) : comparisonLines(comparison).join('\n'));
  },
};

const HELP = new Set(['--help', '-h', 'help']);

async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (!verb || HELP.has(verb)) {
    console.log(usage());
    return;
  }
  const run = verbs[verb];
  if (!run) throw new UserError(`unknown verb "${verb}" (try: ${Object.keys(verbs).join(', ')})`);
  if (rest.some((arg) => arg === '--help' || arg === '-h')) {
    console.log(usage(verb));
    return;
  }
  if (verb === 'worker' || verb === 'gpu-worker') (await import('./connect')).workerLogs();
  await run(rest);
}

/** A user's mistake is one line and exit code 2; anything else is a bug, shown with its stack. */
function isUserMistake(err: unknown): err is Error {
  return err instanceof UserError || (err instanceof Error && err.name === 'RepoError');
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    if (isUserMistake(err)) {
      console.error(`autoresearch: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
