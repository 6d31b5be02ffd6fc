// The study: a thin shell around its state machine (study.ts), as program.md's loop would run if it never
// had to wait. Every event (an activity's answer, a child's report, a user's signal, a timer) is one step of
// the machine; every command it returns becomes an activity, a child workflow, a signal or a timer here.
// What the night decides lives in study.ts; how it is done lives here. Deterministic and I/O-free.
import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import { control, decidedSignal, experimentWorkflow, repeatSignal, trainedSignal } from './experiment';
import { causeOf, howClosed, summary } from './failures';
import { verifyWorkflow } from './morning';
import { proposal } from './proposal';
import { legacyResearch, type Carried as LegacyCarried } from './research-legacy';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT, RESEARCH_TAG } from './search-attributes';
import { pauseSignal, resumeSignal, statusQuery, stopSignal } from './signals';
import { detailsOf, newStudy, step, viewOf, type Answer, type Command, type Study } from './study';
import {
  CONTROL_QUEUE,
  experimentId,
  experimentWorkflowId,
  morningWorkflowId,
  type ExperimentRecord,
  type RunConfig,
  type RunSetup,
  type RunState,
  type StatusView,
} from './types';

const STATE_MACHINE = 'state-machine'; // the patch: histories without it replay the study as it was (research-legacy.ts)
// Histories without these replay by the state machine's earlier rules (study.ts RULES says what each changed).
const RULES_3 = 'study-rules-3';
const RULES_2 = 'study-rules-2';

/** Waits on an experiment's workflow that an earlier run started, for as long as a child may live. */
const watcher = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '8 days', // a child waits at most 7 days for its decision
  heartbeatTimeout: '30 seconds', // a dead control worker's watch is taken up by another
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** State carried across continue-as-new: commit ids and numbers, never files (64 slots fit in 256 KB). */
export interface Carried {
  setup: RunSetup;
  study: Study;
}

export async function researchWorkflow(config: RunConfig, carried?: Carried | LegacyCarried): Promise<StatusView> {
  if ((carried && 'launched' in carried) || !patched(STATE_MACHINE)) return legacyResearch(config, carried as LegacyCarried);
  let study: Study = { ...(carried?.study ?? newStudy()), rules: patched(RULES_3) ? 3 : patched(RULES_2) ? 2 : 1 };
  let setup = carried?.setup ?? { baseCommit: '', harnessDigest: '', gpuQueue: '' };
  const events: Answer[] = [];
  const children = new Map<number, ChildWorkflowHandle<typeof experimentWorkflow>>();
  const proposals = new Map<number, CancellationScope>();
  let verdict: string | undefined;
  let ended: RunState | null = null;
  const idOf = (n: number) => experimentId(config.tag, n);

  // Handlers before the first await: `status` and `stop` work while the run is still being prepared.
  setHandler(pauseSignal, () => void events.push({ type: 'pause' }));
  setHandler(resumeSignal, () => void events.push({ type: 'resume' }));
  setHandler(stopSignal, ({ cancelInFlight, reason }) =>
    void events.push({ type: 'stop', reason: reason ?? 'stopped by request', cancel: cancelInFlight }),
  );
  setHandler(trainedSignal, ({ experimentId: id, commit, run, result }) => {
    const x = study.experiments.find((e) => idOf(e.n) === id);
    if (x) events.push({ type: 'trained', n: x.n, run, commit, result });
  });
  setHandler(statusQuery, () => status());
  if (carried) events.push({ type: 'resumed' });
  else {
    setup = await control.prepareRun.executeWithOptions({ summary: `prepare ${config.tag}: branch, baseline ref, harness digest` }, [config]);
    events.push({ type: 'prepared', baseCommit: setup.baseCommit });
  }

  try {
    return await loop();
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled from the Web UI or `temporal workflow cancel`: like `stop --cancel`, every experiment in flight
    // is killed and recorded before the run closes.
    await CancellationScope.nonCancellable(async () => {
      events.push({ type: 'stop', reason: 'cancelled', cancel: true });
      await loop();
      describe('cancelled: every experiment in flight was recorded');
    });
    throw err;
  }

  /** One event at a time through the machine; its commands carried out, until it finishes or continues as new. */
  async function loop(): Promise<StatusView> {
    for (;;) {
      await condition(() => events.length > 0);
      const event = events.shift()!;
      const next = step(config, study, { ...event, at: Date.now(), historyFull: workflowInfo().continueAsNewSuggested });
      study = next.state;
      for (const command of next.commands) {
        const end = carryOut(command);
        if (end) return await end;
      }
    }
  }

  /** Starts a command's work (its answer comes back as an event); the study's end is returned to await. */
  function carryOut(c: Command): Promise<StatusView> | null {
    const answer = (work: () => Promise<Answer>) => void CancellationScope.nonCancellable(work).then((a) => void events.push(a));
    switch (c.type) {
      case 'propose': {
        const scope = new CancellationScope();
        proposals.set(c.key, scope);
        void scope
          .run(() => proposal(config, c))
          .then((a) => void events.push(a))
          .finally(() => proposals.delete(c.key));
        return null;
      }
      case 'cancelProposal':
        proposals.get(c.key)?.cancel();
        return null;
      case 'merge':
        answer(async () => {
          const merged = await control.mergeProposal
            .executeWithOptions(summary(`proposal ${c.key}`, `merge onto ${c.onto.slice(0, 7)}`), [{ config, ...c }])
            .catch((err) => ({ ok: false as const, reason: causeOf(err) }));
          return merged.ok
            ? { type: 'merged', key: c.key, onto: c.onto, commit: merged.commit, change: merged.change }
            : { type: 'mergeFailed', key: c.key, reason: merged.reason };
        });
        return null;
      case 'start':
        answer(async () => {
          const { n, parent, commit, tree, description, seeds } = c.experiment;
          const id = idOf(n);
          try {
            const child = await startChild(experimentWorkflow, {
              workflowId: experimentWorkflowId(id),
              args: [{ config, experimentId: id, n, parent, commit, label: tree!, description, seeds, harnessDigest: setup.harnessDigest, gpuQueue: setup.gpuQueue }],
              parentClosePolicy: ParentClosePolicy.ABANDON, // it trains and reports even after this run continued as new
              typedSearchAttributes: [{ key: RESEARCH_TAG, value: config.tag }],
              staticSummary: `${id}: ${description}`.slice(0, 200),
            });
            children.set(n, child);
            return { type: 'started', n };
          } catch (err) {
            return { type: 'startFailed', n, problem: causeOf(err) };
          }
        });
        return null;
      case 'watch':
        // A child closes after its decision; one that closes before reporting (terminated, failed) frees its slot.
        answer(async () => {
          const child = children.get(c.n);
          const how = child
            ? await child.result().then(() => 'completed', (err) => howClosed(err.cause ?? err))
            : await watcher.watchExperiment(experimentWorkflowId(idOf(c.n)));
          return { type: 'closed', n: c.n, how };
        });
        return null;
      case 'signal':
        answer(async () => {
          const handle = getExternalWorkflowHandle(experimentWorkflowId(idOf(c.n)));
          const s = c.signal;
          const sent =
            s.kind === 'cancel' ? handle.cancel()
            : s.kind === 'repeat' ? handle.signal(repeatSignal, { seed: s.seed })
            : handle.signal(decidedSignal, { status: s.row.status, reason: s.row.reason, valBpb: s.row.valBpb });
          const ok = await sent.then(() => true, () => false); // gone (terminated by hand): it hears nothing
          return { type: 'signalled', n: c.n, kind: s.kind, ok };
        });
        return null;
      case 'record':
        answer(async () => {
          const { row, move } = c;
          const what = `record ${row.status}${row.valBpb === null ? '' : ` ${row.valBpb.toFixed(6)}`}${move ? ', move the branch' : ''}`;
          const input = { config, record: row, move: move ?? undefined, dropProposal: c.dropProposal ?? undefined };
          const problem = await control.recordExperiment.executeWithOptions(summary(row.id, what), [input]).then(
            () => undefined,
            (err) => causeOf(err), // the row cannot be written, or the branch moved outside the run
          );
          publish(row);
          return { type: 'recorded', n: row.n, problem };
        });
        return null;
      case 'wake':
        answer(() => sleep(Math.max(1, c.at - Date.now())).then(() => ({ type: 'wake' })));
        return null;
      case 'verify':
        answer(async () => {
          describe(`verifying: the baseline and the best, ${config.verifyRuns} runs each`);
          const result = await executeChild(verifyWorkflow, {
            workflowId: morningWorkflowId(config.tag, 'verify'),
            args: [{ config, runs: config.verifyRuns! }],
            typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.verify` }],
          }).then((v) => v.line, (err) => `verify failed: ${causeOf(err)}`);
          verdict = result;
          return { type: 'verified' };
        });
        return null;
      case 'note':
        describe(c.text);
        return null;
      case 'continueAsNew':
        // An event that came in the same activation is this run's to handle: the machine asks again after it.
        if (events.length > 0) return null;
        describe('continuing as new');
        return continueAsNew<typeof researchWorkflow>(config, { setup, study });
      case 'finish':
        if (c.failed) {
          describe(`failed: ${c.reason}`);
          throw ApplicationFailure.nonRetryable(c.reason, 'RunHalted');
        }
        ended = study.stop ? 'stopped' : 'completed';
        describe(`${ended}: ${c.reason}${verdict ? `\n\nverdict: ${verdict}` : ''}`);
        return Promise.resolve({ ...status(), reason: c.reason, verdict });
    }
  }

  // ---- what the Web UI and `status` show -------------------------------------------------------------

  function status(): StatusView {
    return viewOf(config, study, ended);
  }

  function publish(last: ExperimentRecord): void {
    const view = status();
    upsertSearchAttributes([
      { key: EXPERIMENTS_DONE, value: view.experimentsDone },
      { key: EXPERIMENTS_KEPT, value: view.experimentsKept },
      ...(view.best ? [{ key: BEST_VAL_BPB, value: view.best.valBpb }] : []),
    ]);
    upsertMemo({ repo: config.repo, proposer: config.proposer, bestCommit: view.best?.commit ?? null, sigma: view.noise?.sigma ?? null, warnings: view.warnings });
    describe(`${last.id} ${last.status}${last.valBpb === null ? '' : ` val_bpb ${last.valBpb.toFixed(6)}`}: ${last.description}`);
  }

  function describe(now: string): void {
    setCurrentDetails(detailsOf(status(), now));
  }
}
