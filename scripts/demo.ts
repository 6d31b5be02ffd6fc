// `npm start`: a whole study in one command — provision, a server if none answers, both workers,
// a fresh tiny repo, a short night on two slots printed as it goes (the baseline four times for the noise,
// near-ties confirmed), the morning verdict and the ablation, then the table and the report.
import type { Worker } from '@temporalio/worker';
import { join, resolve } from 'node:path';
import { createControlWorker } from '../activities/worker';
import { formatScore, readRecords, resultsDir, TSV_HEADER, tsvRow } from '../activities/results';
import { createGpuWorker } from '../gpu-worker/worker';
import { RESULTS_TSV, workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { writeReport } from './report';
import { resultsTable } from './status';
import { connectClient, connectWorker, quietWorkerLogs, temporalTarget, webUiBase } from './connect';
import { initRepo } from './init';
import { provision } from './provision';
import { serverAnswers, startDevServer, type DevServer } from './server';
import { ablateRun, ablationLines } from './morning';
import { startRun, uiLink } from './runs';
import { noiseLine } from './watch';

const DEMO_DIR = resolve('.autoresearch'); // everything the demo makes, under the current directory
const EXPERIMENTS = 6;
const BUDGET_SECONDS = 10;
const TIMEOUT_MS = 2 * 60_000;
const SLOTS = 2; // two trainings side by side: the machine's two cores
const MORNING_RUNS = 2; // verify and ablate: trainings per commit (3 by default; 2 keeps the demo short)

export async function demo(log: (line: string) => void = console.log): Promise<void> {
  const started = Date.now();
  quietWorkerLogs();
  const { pythonBin } = await provision(log);
  const target = temporalTarget();
  let server: DevServer | null = null;
  let uiBase: string | null;
  if (await serverAnswers(target.address)) {
    log(`using the Temporal server at ${target.address}`);
    uiBase = webUiBase(target.address);
  } else {
    const port = Number(target.address.split(':')[1] ?? 7233);
    server = await startDevServer({ db: join(DEMO_DIR, 'temporal.db'), port, uiPort: port + 1000, log });
    uiBase = server.uiUrl;
    log(`started a Temporal dev server at ${server.address} (history in ${join(DEMO_DIR, 'temporal.db')})`);
  }
  const workers: Worker[] = [];
  try {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const tag = `demo-${stamp}`;
    const repo = await initRepo('tiny', join(DEMO_DIR, 'repos', tag), log);
    const connection = await connectWorker(target);
    workers.push(await createControlWorker(connection, target.namespace));
    workers.push(await createGpuWorker(connection, target.namespace, { checkout: repo, slots: SLOTS, pathPrefix: pythonBin }));
    const client = await connectClient(target);
    const config: RunConfig = {
      tag, repo, proposer: 'sweep', editable: ['train.py'], command: 'python train.py', timeoutMs: TIMEOUT_MS,
      budgetSeconds: BUDGET_SECONDS, parallel: SLOTS, maxExperiments: EXPERIMENTS, seed: 0, minImprovement: 0,
      baselineRuns: 2 * SLOTS, verifyRuns: MORNING_RUNS, // two rounds: σ on 3 degrees of freedom
    };
    await startRun(async () => client, config);
    log(`started ${workflowIdFor(tag)}: ${EXPERIMENTS} experiments of ${BUDGET_SECONDS}s with the sweep proposer, ${SLOTS} slots`);
    const link = uiBase ? uiLink(uiBase, target.namespace, tag) : 'set AUTORESEARCH_UI to your Web UI\'s address for a link';
    log(`watch it live: ${link}\n`);
    log(TSV_HEADER);
    const finished = client.workflow.getHandle(workflowIdFor(tag)).result() as Promise<StatusView>;
    const printing = printRowsAsTheyFinish(repo, tag, finished, log);
    // The morning, straight after the night: which kept changes mattered.
    const ablated = Promise.all([finished, printing]).then(() => {
      log(`\nablating: the best without each kept change, ${MORNING_RUNS} trainings each`);
      return ablateRun(client, tag, MORNING_RUNS);
    });
    const view = await Promise.all(workers.map((w) => w.runUntil(ablated))).then(() => finished);
    for (const line of ablationLines(await ablated)) log(`  ${line}`);
    if (view.noise) log(`noise:        ${noiseLine(view.noise)}`);
    if (view.verdict) log(`verdict:      ${view.verdict}`);
    log(`\n${await resultsTable(repo, tag, log)}`);
    const report = await writeReport(repo, tag, log);
    log(`\nbest val_bpb: ${view.best ? formatScore(view.best.valBpb) : '-'} (${view.best?.commit.slice(0, 7)}), ${view.experimentsKept} of ${view.experimentsDone} kept`);
    log(`results:      ${join(resultsDir(repo, tag), RESULTS_TSV)}`);
    log(`branch:       git -C ${repo} log --oneline autoresearch/${tag}`);
    log(`chart:        ${report.charts.progress!.svg} (and .png)`);
    if (report.charts.ablation) log(`ablation:     ${report.charts.ablation.svg} (and .png)`);
    log(`summary:      ${report.markdown}`);
    log(`web ui:       ${link}`);
    log(`demo took ${Math.round((Date.now() - started) / 1000)}s`);
    await connection.close();
  } finally {
    if (server) {
      await server.stop();
      log(`stopped the dev server; browse this history later with \`npx autoresearch server\` and ${uiBase}`);
    }
  }
}

async function printRowsAsTheyFinish(repo: string, tag: string, finished: Promise<unknown>, log: (line: string) => void): Promise<void> {
  let printed = 0;
  let done = false;
  finished.finally(() => (done = true)).catch(() => undefined);
  for (;;) {
    const records = await readRecords(repo, tag);
    for (const record of records.slice(printed)) log(tsvRow(record));
    printed = records.length;
    if (done) return;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}
