// `npx autoresearch <verb>`: a thin layer over the modules that do the work.
import { Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { resolve } from 'node:path';
import { RepoError } from '../activities/repo';
import { createControlWorker } from '../activities/worker';
import { canIsolateNetwork } from '../gpu-worker/runner';
import { createGpuWorker, detectGpus, slotsFor } from '../gpu-worker/worker';
import { CONTROL_QUEUE, GPU_QUEUE } from '../workflows/types';
import { parseCount, parseFlags, required } from './args';
import { connectClient, connectWorker, temporalTarget } from './connect';
import { demo } from './demo';
import { UserError } from './errors';
import { initRepo } from './init';
import { provision, pythonEnv } from './provision';
import { pauseRun, resumeRun, runConfigFrom, START_OPTIONS, startRun, stopRun, uiLink } from './runs';
import { registerSearchAttributes, startDevServer } from './server';
import { writeReport } from './report';
import { fetchStatus, repoOf, resultsTable, statusJson, watchStatus } from './status';
import { DEFAULT_WATCH_WIDTH, renderWatch } from './watch';

const USAGE = `usage: npx autoresearch <verb>
  demo                                   a short study on the tiny target, end to end (npm start)
  server [--db FILE] [--port 7233] [--ui-port 8233]
  worker                                 the control worker
  gpu-worker --repo PATH [--slots N | --gpus 0,1 | --gpus all] [--no-network]
  init --target tiny PATH
  start --repo PATH --tag TAG [--proposer llm|sweep] [--model NAME] [--max-experiments N] [--until 07:30]
        [--timeout 5m] [--budget SECONDS] [--parallel P] [--command CMD] [--editable a.py,b.py] [--seed N]
        [--min-improvement X] [--max-tokens-total N] [--llm-timeout 2m]
  status TAG [--json] [--watch]
  pause TAG | resume TAG | stop TAG [--cancel]
  results TAG [--repo PATH]
  report TAG [--repo PATH]                a progress chart (SVG, PNG) and a summary, written to the repo's report/
  provision                              build or find the Temporal CLI and the Python environment`;

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

const verbs: Record<string, Verb> = {
  demo: async () => demo(),

  provision: async () => void (await provision()),

  async server(argv) {
    const { flags } = parseFlags('server', argv, { db: { type: 'string' }, port: { type: 'string' }, 'ui-port': { type: 'string' } });
    const port = flags.port === undefined ? 7233 : parseCount('--port', flags.port as string);
    const uiPort = flags['ui-port'] === undefined ? port + 1000 : parseCount('--ui-port', flags['ui-port'] as string);
    const db = resolve((flags.db as string | undefined) ?? '.autoresearch/temporal.db');
    const server = await startDevServer({ db, port, uiPort });
    console.log(`temporal server: ${server.address}\nweb ui:          ${server.uiUrl}\nhistory:         ${db}\n(Ctrl-C stops it; start it again on the same file to resume)`);
    const stop = () => void server.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await new Promise((done) => server.child.once('exit', done));
  },

  async worker(argv) {
    parseFlags('worker', argv, {});
    const target = temporalTarget();
    const connection = await connectWorker(target);
    const client = await Connection.connect(target.options);
    await registerSearchAttributes(client, target.namespace).catch((err) => console.warn(`could not register search attributes: ${(err as Error).message}`));
    await client.close();
    console.log(`control worker: task queue ${CONTROL_QUEUE} on ${target.address} (${target.namespace})`);
    await serveWorkers(connection, async () => [await createControlWorker(connection, target.namespace)]);
  },

  async 'gpu-worker'(argv) {
    const { flags } = parseFlags('gpu-worker', argv, { repo: { type: 'string' }, slots: { type: 'string' }, gpus: { type: 'string' }, 'no-network': { type: 'boolean' } });
    const checkout = resolve(required(flags, 'repo', 'gpu-worker'));
    const gpus = flags.gpus === 'all' ? detectGpus() : (flags.gpus as string | undefined)?.split(',').map((g) => g.trim());
    if (gpus?.length === 0) throw new UserError('--gpus all: nvidia-smi lists no GPU on this host; train on CPU with --slots N');
    if (gpus && gpus.some((g) => !/^\d+$/.test(g))) throw new UserError(`--gpus: "${flags.gpus}" is not a list of GPU indexes like 0,1 (or all)`);
    if (gpus && flags.slots !== undefined) throw new UserError('gpu-worker: --gpus and --slots exclude each other (one slot per GPU)');
    const slots = flags.slots === undefined ? 1 : parseCount('--slots', flags.slots as string);
    const noNetwork = Boolean(flags['no-network']);
    if (noNetwork && !canIsolateNetwork()) throw new UserError('--no-network: this host cannot give a training a network namespace of its own (unshare --net failed)');
    const pathPrefix = await pythonEnv();
    const target = temporalTarget();
    const connection = await connectWorker(target);
    const opts = { checkout, slots, gpus, pathPrefix, noNetwork };
    console.log(`gpu worker: ${slotsFor(opts).length} slot(s) on task queue ${GPU_QUEUE} at ${target.address}, checkout ${checkout}`);
    console.log(`training commands run with ${pathPrefix} first on PATH${noNetwork ? ', without network access' : ''}`);
    await serveWorkers(connection, async () => [await createGpuWorker(connection, target.namespace, opts)]);
  },

  async init(argv) {
    const { flags, positionals } = parseFlags('init', argv, { target: { type: 'string' } });
    if (positionals.length !== 1) throw new UserError('init: expected one PATH (npx autoresearch init --target tiny PATH)');
    const repo = await initRepo((flags.target as string | undefined) ?? 'tiny', positionals[0]);
    console.log(`ready: npx autoresearch start --repo ${repo} --tag TAG`);
  },

  async start(argv) {
    const { flags, positionals } = parseFlags('start', argv, START_OPTIONS);
    if (positionals.length) throw new UserError(`start: unexpected argument "${positionals[0]}"`);
    const { config, why } = await runConfigFrom(flags);
    const target = temporalTarget();
    const workflowId = await startRun(() => connectClient(target), config);
    console.log(`started:  ${workflowId}`);
    console.log(`proposer: ${config.proposer} (${why})`);
    console.log(`web ui:   ${uiLink(process.env.AUTORESEARCH_UI ?? 'http://localhost:8233', target.namespace, config.tag)}`);
  },

  async status(argv) {
    const { flags, positionals } = parseFlags('status', argv, { json: { type: 'boolean' }, watch: { type: 'boolean' } });
    const tag = oneTag('status', positionals);
    const client = await connectClient();
    if (flags.watch) return watchStatus(client, tag);
    const view = await fetchStatus(client, tag);
    console.log(flags.json ? statusJson(view) : renderWatch(view, process.stdout.columns ?? DEFAULT_WATCH_WIDTH));
  },

  async pause(argv) {
    const tag = oneTag('pause', parseFlags('pause', argv, {}).positionals);
    await pauseRun(await connectClient(), tag);
    console.log(`pausing ${tag}: experiments in flight finish, nothing new starts`);
  },

  async resume(argv) {
    const tag = oneTag('resume', parseFlags('resume', argv, {}).positionals);
    await resumeRun(await connectClient(), tag);
    console.log(`resumed ${tag}`);
  },

  async stop(argv) {
    const { flags, positionals } = parseFlags('stop', argv, { cancel: { type: 'boolean' } });
    const tag = oneTag('stop', positionals);
    await stopRun(await connectClient(), tag, Boolean(flags.cancel));
    console.log(`stopping ${tag}: ${flags.cancel ? 'cancelling' : 'finishing'} the experiments in flight`);
  },

  async results(argv) {
    const { flags, positionals } = parseFlags('results', argv, { repo: { type: 'string' } });
    console.log(await resultsTable(await repoOf(await connectClient(), oneTag('results', positionals), flags.repo as string | undefined)));
  },

  async report(argv) {
    const { flags, positionals } = parseFlags('report', argv, { repo: { type: 'string' } });
    const repo = await repoOf(await connectClient(), oneTag('report', positionals), flags.repo as string | undefined);
    const { svg, png, markdown } = await writeReport(repo);
    console.log(`chart:   ${svg}\n         ${png}\nsummary: ${markdown}`);
  },
};

async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (!verb || verb === '--help' || verb === 'help') {
    console.log(USAGE);
    return;
  }
  const run = verbs[verb];
  if (!run) throw new UserError(`unknown verb "${verb}" (try: ${Object.keys(verbs).join(', ')})`);
  await run(rest);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    if (err instanceof UserError || err instanceof RepoError) {
      console.error(`autoresearch: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
