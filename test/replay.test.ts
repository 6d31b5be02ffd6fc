// Studies run for hours: a deploy must not break the ones in flight. Recorded histories of real runs
// (test/record-histories.ts) are replayed against the current workflow code; any change to the
// sequence of commands they made fails here, before it can fail a night. Change the workflow
// compatibly (patched(), or continue-as-new) and re-record when a new history shape is worth keeping.
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
const load = (file: string) => historyFromJSON(JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')));
const files = readdirSync(HISTORIES).filter((f) => f.endsWith('.json')).sort();

test('the recorded histories cover decisions, a pause, a stop, a crash, the llm proposer and continue-as-new', () => {
  assert.deepEqual(files, ['continued-1.json', 'continued-2.json', 'decisions.json', 'llm.json', 'paused-stopped.json']);
  const { EventType } = temporal.api.enums.v1;
  const count = (file: string, type: temporal.api.enums.v1.EventType) => load(file).events!.filter((e) => e.eventType === type).length;
  assert.equal(count('continued-1.json', EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW), 1);
  assert.equal(count('paused-stopped.json', EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED), 3, 'pause, resume, stop');
  assert.ok(count('paused-stopped.json', EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) > 0, 'stop cancelled a training');
});

for (const file of files) {
  test(`${file} replays deterministically against the current workflow`, async () => {
    quietWorkers();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, load(file), file);
  });
}

test('a workflow changed incompatibly fails the replay (the check has teeth)', async () => {
  const changed = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/changed-workflow'), logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } });
  await assert.rejects(Worker.runReplayHistory({ workflowBundle: changed }, load('decisions.json'), 'decisions.json'), DeterminismViolationError);
});
