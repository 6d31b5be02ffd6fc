// The Web UI, in a real browser: a finished run is found by its tag with the list query a user would
// type, and its search attributes (best val_bpb, experiments done and kept) are on the page, both as
// columns of the workflow list and in the run's Search Attributes tab.
//
// Needs Debian's chromium and the playwright-core package; the setup installs whichever is missing,
// visibly (apt-get as root: about 30 s; the npm packages from the lockfile).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Browser, Page } from 'playwright-core';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker } from '../gpu-worker/worker';
import { startRun } from '../scripts/runs';
import { startDevServer, type DevServer } from '../scripts/server';
import { experimentWorkflowId, workflowIdFor, type StatusView } from '../workflows/types';
import { ROOT, makeRepo, quietWorkers } from './helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TAG = `webui${Date.now().toString(36)}`;
const DOC_SCREENSHOT = join(ROOT, 'docs', 'webui.png');
const MAX_SCREENSHOT_BYTES = 300_000;
const UI_TIMEOUT_MS = 20_000; // one page or one element; a warm UI answers in about a second

const say = (line: string) => process.stderr.write(`webui: ${line}\n`);

/** Runs a command with its output shown as it goes (on stderr, so the test runner's stream stays clean). */
function visibly(cmd: string, args: string[], cwd = ROOT): Promise<number | null> {
  say(`$ ${cmd} ${args.join(' ')}`);
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 2, 2] });
    child.on('error', fail);
    child.on('close', done);
  });
}

async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) throw new Error(`${CHROMIUM} is missing and this is not root: install it with \`sudo apt-get install -y chromium\``);
  say('chromium is missing: installing Debian\'s chromium (about 30 s)');
  const started = Date.now();
  if ((await visibly('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'])) !== 0) {
    say('the install failed: refreshing the package lists and trying again');
    if ((await visibly('apt-get', ['update'])) !== 0) throw new Error('apt-get update failed');
    if ((await visibly('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'])) !== 0) throw new Error('apt-get install chromium failed');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium, but ${CHROMIUM} is not there`);
  say(`chromium installed in ${Math.round((Date.now() - started) / 1000)} s`);
}

async function loadPlaywright(): Promise<typeof import('playwright-core')> {
  try {
    require.resolve('playwright-core');
  } catch {
    say('playwright-core is missing: installing the npm packages from the lockfile');
    if ((await visibly('npm', ['install', '--no-audit', '--no-fund'])) !== 0) throw new Error('npm install failed');
  }
  return import('playwright-core');
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

let server: DevServer | undefined;
let browser: Browser | undefined;
let stopWorkers: (() => void) | undefined;
let workersDone: Promise<unknown> = Promise.resolve();
let result: StatusView;

before(async () => {
  const [, playwright] = await Promise.all([ensureChromium(), loadPlaywright()]);
  quietWorkers();
  const dir = await mkdtemp(join(tmpdir(), 'autoresearch-webui-'));
  server = await startDevServer({ db: join(dir, 'temporal.db'), port: await freePort(), uiPort: await freePort(), log: say });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const native = await NativeConnection.connect({ address: server.address });
  const repo = await makeRepo({ 'train.py': 'LEARNING_RATE = 0.1\n' });
  const workers: Worker[] = [await createControlWorker(native, 'default'), await createGpuWorker(native, 'default', { checkout: repo, slots: 1 })];
  const stopped = new Promise<void>((done) => (stopWorkers = done));
  workersDone = Promise.all(workers.map((w) => w.runUntil(stopped))).finally(() => Promise.all([native.close(), connection.close()]));
  await startRun(async () => client, {
    tag: TAG, repo, proposer: 'sweep', editable: ['train.py'], command: "printf -- '---\\nval_bpb: 1.5\\n'",
    timeoutMs: 30_000, budgetSeconds: 1, parallel: 1, seed: 0, minImprovement: 0, maxExperiments: 2,
  });
  result = await client.workflow.getHandle(workflowIdFor(TAG)).result();
  stopWorkers!();
  await workersDone;
  browser = await playwright.chromium.launch({ executablePath: CHROMIUM });
}, { timeout: 15 * 60_000 }); // room for installing chromium on a fresh machine

after(async () => {
  await browser?.close();
  stopWorkers?.();
  await workersDone;
  await server?.stop();
});

async function newPage(): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width: 1536, height: 520 } });
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  return page;
}

const listUrl = () => `${server!.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(`ResearchTag="${TAG}"`)}`;

test('the run completed with the values the UI must show', () => {
  assert.equal(result.state, 'completed');
  assert.equal(result.experimentsDone, 2);
  assert.equal(result.experimentsKept, 1);
  assert.equal(result.best?.valBpb, 1.5);
});

test('the workflow list, queried by ResearchTag, is the night\'s table: the study and each experiment with its status and score', async () => {
  const page = await newPage();
  try {
    await page.goto(listUrl());
    await page.getByRole('link', { name: workflowIdFor(TAG), exact: true }).waitFor();
    // The list shows built-in columns only until the user adds others: add ours, as a user would.
    await page.getByTestId('workflows-summary-table-configuration-button').click();
    for (const name of ['ResearchTag', 'ExperimentStatus', 'ValBpb', 'BestValBpb', 'ExperimentsDone', 'ExperimentsKept']) {
      await page.getByRole('button', { name: `Add ${name} column` }).click();
    }
    for (const name of ['Run ID', 'Type', 'End']) await page.getByRole('button', { name: `Remove ${name} column` }).click();
    await page.getByRole('button', { name: 'Close Workflows Table configuration' }).click();
    await page.getByText('Configure Workflows Table').waitFor({ state: 'hidden' });
    const savedViews = page.getByRole('button', { name: 'Collapse saved views' }); // more room for the table, where the UI has it
    if (await savedViews.isVisible()) await savedViews.click();
    await page.locator('table thead th', { hasText: 'ExperimentsKept' }).waitFor();

    const rows = page.locator('table tbody tr');
    await page.getByRole('link', { name: experimentWorkflowId(`${TAG}-1`) }).waitFor();
    assert.equal(await rows.count(), 3, 'the study and its two experiments have this tag');
    const headers = (await page.locator('table thead th').allInnerTexts()).map((h) => h.trim());
    const table = new Map<string, Record<string, string>>();
    for (let i = 0; i < 3; i++) {
      const cells = (await rows.nth(i).locator('td').allInnerTexts()).map((c) => c.trim());
      const row = Object.fromEntries(headers.map((h, j) => [h, cells[j]]));
      table.set(row['Workflow ID'], row);
    }
    const study = table.get(workflowIdFor(TAG))!;
    assert.equal(study.Status.toLowerCase(), 'completed'); // the UI capitalizes it by CSS or not, by version
    assert.equal(study.ResearchTag, TAG);
    assert.equal(study.BestValBpb, '1.5');
    assert.equal(study.ExperimentsDone, '2');
    assert.equal(study.ExperimentsKept, '1');
    const [baseline, second] = [table.get(experimentWorkflowId(`${TAG}-0`))!, table.get(experimentWorkflowId(`${TAG}-1`))!];
    assert.deepEqual([baseline.ExperimentStatus, baseline.ValBpb], ['keep', '1.5']);
    assert.deepEqual([second.ExperimentStatus, second.ValBpb], ['discard', '1.5']);

    const shot = join(await mkdtemp(join(tmpdir(), 'autoresearch-webui-shot-')), 'webui.png');
    await page.screenshot({ path: shot, clip: { x: 0, y: 0, width: 1536, height: 400 } });
    const { size } = await stat(shot);
    assert.ok(size > 10_000 && size < MAX_SCREENSHOT_BYTES, `screenshot of ${size} bytes`);
    // docs/webui.png is refreshed only on request, so a test run leaves the work tree as it was.
    if (process.env.AUTORESEARCH_SCREENSHOT || !existsSync(DOC_SCREENSHOT)) {
      await mkdir(join(ROOT, 'docs'), { recursive: true });
      await copyFile(shot, DOC_SCREENSHOT);
      say(`screenshot saved to ${DOC_SCREENSHOT}`);
    } else {
      say(`screenshot at ${shot} (AUTORESEARCH_SCREENSHOT=1 copies it to ${DOC_SCREENSHOT})`);
    }
  } finally {
    await page.close();
  }
});

test("the run's page shows its search attributes in the Search Attributes tab", async () => {
  const page = await newPage();
  try {
    await page.goto(listUrl());
    await page.getByRole('link', { name: workflowIdFor(TAG), exact: true }).click();
    await page.waitForURL(new RegExp(`/workflows/${workflowIdFor(TAG)}/[0-9a-f-]+/`));
    await page.getByRole('tab', { name: 'Search Attributes' }).click();
    await page.waitForURL(/\/search-attributes$/);
    const panel = page.locator('main').getByText('"ExperimentsKept"').first();
    await panel.waitFor();
    const text = await page.locator('main').innerText();
    assert.match(text, /"BestValBpb": 1\.5,/);
    assert.match(text, /"ExperimentsDone": 2,/);
    assert.match(text, /"ExperimentsKept": 1,/);
    assert.match(text, new RegExp(`"ResearchTag": "${TAG}"`));
  } finally {
    await page.close();
  }
});
