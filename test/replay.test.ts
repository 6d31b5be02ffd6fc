// Studies run for hours: a deploy must not break the ones in flight. Recorded histories of real runs
// (test/record-histories.ts), the first at the top and each later version in a folder of its own, are replayed against the current workflow
// code; any change to the sequence of commands they made fails here, before it can fail a night. Change
// the workflow behind patched(), and record a new folder; folders already there are never re-recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { workflowBundle } from '../activities/worker';
import { quietWorkers } from './helpers';

const HISTORIES = join(__dirname, 'fixtures', 'histories');
// The first recordings (ab9e70c's code) lie at the top, where they were made; each later version has a folder
// named for the short commit that recorded it.
const FIRST = 'ab9e70c';
const folderOf = (version: string) => (version === FIRST ? '' : version);
const VERSIONS = [FIRST, ...readdirSync(HISTORIES).filter((f) => !f.endsWith('.json')).sort()];
const load = (file: string) => historyFromJSON(JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')));
const jsonIn = (version: string) => readdirSync(join(HISTORIES, folderOf(version))).filter((f) => f.endsWith('.json')).sort();
// What every version's folder holds; later ones add more (2fddaec: the agent proposer, agent.json).
const FILES = [
  'continued-1.json', 'continued-2.json', 'continued-3.json', 'decisions.json', 'experiment.json', 'llm.json', 'noise.json',
  'paused-stopped.json', 'verify.json',
];

test('every recorded version is kept: two before the state machine and the first on it', () => {
  for (const version of ['ab9e70c', '0052b7c', 'b18799b']) assert.ok(VERSIONS.includes(version), version);
});

for (const version of VERSIONS) test(`${version}: its histories cover decisions, a pause, a stop, a crash, the llm proposer, continue-as-new, noise and the verdict`, () => {
  assert.deepEqual(jsonIn(version).filter((f) => FILES.includes(f)), FILES);
  const { EventType } = temporal.api.enums.v1;
  const events = (file: string, type: temporal.api.enums.v1.EventType) => load(join(folderOf(version), file)).events!.filter((e) => e.eventType === type);
  assert.equal(events('continued-1.json', EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW).length, 1);
  const signals = events('paused-stopped.json', EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED).map((e) => e.workflowExecutionSignaledEventAttributes!.signalName);
  assert.deepEqual(signals.filter((name) => name !== 'trained'), ['pause', 'resume', 'stop']);
  assert.ok(events('paused-stopped.json', EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED).length > 0, 'stop cancelled a training');
  assert.ok(events('decisions.json', EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED).length === 7, 'one child per experiment');
  const repeats = events('noise.json', EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED).filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes!.signalName === 'repeat');
  assert.ok(repeats.length > 0, 'a near-tie was confirmed');
});

for (const version of VERSIONS) {
  for (const file of jsonIn(version)) {
    test(`${version}/${file} replays deterministically against the current workflow`, async () => {
      quietWorkers();
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, load(join(folderOf(version), file)), file);
    });
  }
}

test('a workflow changed incompatibly fails the replay (the check has teeth)', async () => {
  const changed = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/changed-workflow'), logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } });
  await assert.rejects(Worker.runReplayHistory({ workflowBundle: changed }, load(join(folderOf(VERSIONS.at(-1)!), 'decisions.json')), 'decisions.json'), DeterminismViolationError);
});
