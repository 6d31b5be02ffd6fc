// The study as it ran before the state machine (workflows/study.ts): kept only so that nights started by
// that version replay and finish on this one (a history without the 'state-machine' patch, or a run that
// continued as new with this shape). New nights never come here. Do not change its logic.
import {
  CancellationScope,
  ParentClosePolicy,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  setCurrentDetails,
  setHandler,
  executeChild,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  ApplicationFailure,
} from '@temporalio/workflow';
import { judgeRuns, NO_NOISE, sigmaOf, untrained, withGroup, type Decision, type Judgement, type Noise } from './decide';
import { control, decidedSignal, experimentWorkflow, repeatSignal, trainedSignal } from './experiment';
import { proposer } from './proposal';
import { verifyWorkflow } from './morning';
import { pauseSignal, resumeSignal, statusQuery, stopSignal } from './signals';
import {
  CRASH_LOG_CHARS,
  EXPERIMENTS_PER_HISTORY,
  MAX_AHEAD_PER_SLOT,
  MIN_TOKEN_ALLOWANCE,
  PROPOSER_FAILURES_IN_A_ROW,
  RECENT_KEPT,
  REPAIRS_IN_A_ROW,
  REPAIRS_PER_CRASH,
  mean,
  seedOf,
} from './study';
import { causeOf, failureType, summary } from './failures';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT, RESEARCH_TAG } from './search-attributes';
import {
  experimentId,
  legacyWorkflowId,
  proposalActivityId,
  workflowIdFor,
  type Best,
  type Edit,
  type ExperimentRecord,
  type InFlight,
  type Proposal,
  type RunConfig,
  type RunSetup,
  type RunState,
  type StatusView,
  type TrainingResult,
} from './types';

/** A validated, committed proposal waiting for a slot. Its edits let it be re-applied on a newer best. */
export interface Ready {
  key: number;
  parent: string;
  commit: string;
  description: string;
  edits: Edit[];
  files: Record<string, string>;
  change: string;
  tokens: number;
  fixes?: string;
  temperature?: number;
}

/** An experiment that has a number: training in its child workflow, or waiting to be recorded. */
export interface Launched {
  id: string;
  n: number;
  parent: string | null;
  description: string;
  proposal: Ready | null; // null for the baseline and for proposer failures
  tokens: number; // what its proposal cost
  hasWorkflow: boolean; // false for a proposer failure: nothing to train, only a row to write
  startedAt: string;
  commit: string | null; // known once a training reports
  seeds: number[]; // one per training: the baseline's repeats, a confirmation run
  results: (TrainingResult | null)[]; // by training, as they report
  pending: number; // trainings not yet reported: each holds a slot
}

/** State carried across continue-as-new: the pipeline included, so no slot drains at the boundary. */
export interface Carried {
  setup: RunSetup;
  nextNumber: number; // experiments get numbers when they start training, so untrained proposals are not counted
  nextKey: number; // proposals get keys when they start
  experimentsDone: number;
  experimentsKept: number;
  best: Best | null;
  baselineDone: boolean;
  tokensUsed: number;
  paused: boolean;
  recent: ExperimentRecord[];
  crash: { record: ExperimentRecord; shown: number; depth: number } | null; // the last training crash, for repair
  proposerFailures: number; // in a row
  proposalMs: number; // running mean of a proposal's duration: sizes the pipeline and the deadline
  trainingMs: number; // running mean of a training's duration
  ready: Ready[];
  launched: Launched[];
  toJudge: string[]; // experiments whose trainings have all reported, in that order
  noise: Noise; // pooled σ of val_bpb between runs of one commit
  warnings: string[];
}

export async function legacyResearch(config: RunConfig, carried?: Carried): Promise<StatusView> {
  // Handlers before the first await: `status` and `stop` work while the run is still being prepared.
  const run: Carried = carried ?? freshRun();
  const firstNumberHere = run.nextNumber;
  const proposing = new Map<number, { scope: CancellationScope; parent: string; allowance?: number }>();
  const rebasing = new Set<number>();
  let starting = 0; // child workflows whose start is not yet confirmed
  let recording = false;
  let boundaryAt: number | null = null; // the experiment count at which this run first reached its boundary
  let closing = false; // past the boundary with the queue deep enough: no more proposals, continue as new once settled
  let stop: { cancelInFlight: boolean; reason: string } | null = null;
  let halt: string | null = null; // the run cannot go on: it ends failed, with this reason
  let proposalsOver: string | null = null; // no proposal can succeed any more (budget spent, sweep exhausted)
  let finalState: RunState | null = null;
  let fatal: unknown = null;
  let tick = 0; // bumped by every completion: the loop re-plans after each

  setHandler(pauseSignal, () => void ((run.paused = true), tick++));
  setHandler(resumeSignal, () => void ((run.paused = false), tick++));
  setHandler(stopSignal, ({ cancelInFlight, reason }) => stopRun(reason ?? 'stopped by request', cancelInFlight));
  setHandler(trainedSignal, ({ experimentId, commit, run: i, result }) => {
    const l = run.launched.find((x) => x.id === experimentId);
    if (!l || l.results[i] !== null) return; // not ours, or a duplicate delivery
    l.results[i] = result;
    l.commit ??= commit;
    run.trainingMs = mean(run.trainingMs, result.seconds * 1000);
    if (--l.pending === 0) run.toJudge.push(l.id);
    tick++;
  });
  setHandler(statusQuery, () => status());
  if (!carried)
    run.setup = await control.prepareRun.executeWithOptions(
      { summary: `prepare ${config.tag}: branch, baseline ref, harness digest` },
      [config],
    );

  // One timer for the whole run: at the launch cutoff of --until the loop must wake even if nothing else happens.
  if (config.untilMs !== undefined && config.untilMs - config.timeoutMs > Date.now()) {
    void sleep(config.untilMs - config.timeoutMs - Date.now()).then(
      () => void tick++,
      () => undefined,
    );
  }
  try {
    if (run.nextNumber === 0 && whyEnding() === null) launch(null); // the baseline; proposals made from its commit train beside it
    for (;;) {
      if (fatal) throw fatal;
      const ending = whyEnding();
      if (ending !== null && idle()) {
        return await finish(ending);
      }
      plan();
      // Settled after plan(): it started no proposal, so none is wanted (past the boundary, the queue is deep enough).
      if (ending === null && boundaryReached() && pipelineSettled()) {
        describe('continuing as new');
        return await continueAsNew<typeof legacyResearch>(config, run);
      }
      const seen = tick;
      await condition(() => tick !== seen || fatal !== null);
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled from the Web UI or `temporal workflow cancel`: like `stop --cancel`, every experiment in flight
    // is killed and recorded before the run closes.
    await CancellationScope.nonCancellable(async () => {
      stopRun('cancelled', true);
      while (!idle()) {
        plan();
        const seen = tick;
        await condition(() => tick !== seen);
      }
      describe('cancelled: every experiment in flight was recorded');
    });
    throw err;
  }

  // ---- the plan: what to start now ------------------------------------------------------------

  /** Records what finished, rebases what went stale, launches what is ready, proposes what is missing. */
  function plan(): void {
    if (!recording && nextToRecord()) void recordInOrder().catch((err) => void (fatal = err));
    for (const r of run.ready) if (r.parent !== currentParent() && !rebasing.has(r.key)) void rebase(r);
    while (whyEnding() === null && !run.paused && slotsBusy() < config.parallel) {
      const i = run.ready.findIndex((r) => r.parent === currentParent() && !rebasing.has(r.key));
      if (i < 0) break;
      launch(run.ready.splice(i, 1)[0]);
    }
    for (let k = proposalsWanted(); k > 0; k--) propose(run.nextKey++);
  }

  /** Why no new experiment may start; with nothing in flight, why the run ends. The one place for endings. */
  function whyEnding(): string | null {
    if (stop) return stop.reason;
    if (config.maxExperiments !== undefined && run.nextNumber >= config.maxExperiments)
      return `reached ${config.maxExperiments} experiments`;
    if (config.untilMs !== undefined && Date.now() + config.timeoutMs > config.untilMs) {
      return `deadline ${new Date(config.untilMs).toISOString()} reached`;
    }
    if (proposalsOver && run.ready.length === 0 && proposing.size === 0) return proposalsOver;
    return null;
  }

  /** Why no new proposal may start now (a reason that lifts itself, like a pause, or one that ends the run). */
  function whyNoProposal(): string | null {
    if (whyEnding() !== null || proposalsOver || run.paused) return 'not now';
    if (closingForBoundary()) return 'continuing as new';
    if (config.untilMs !== undefined && Date.now() + run.proposalMs + config.timeoutMs > config.untilMs)
      return 'too late';
    if (config.maxTokensTotal !== undefined && unreservedTokens()! < MIN_TOKEN_ALLOWANCE) {
      // Spent for good once no proposal in flight can hand back part of its allowance.
      if (proposing.size === 0) proposalsOver = `token budget of ${config.maxTokensTotal} reached`;
      return 'budget';
    }
    return null;
  }

  /** Enough proposals in the pipeline to hand every slot that frees a ready candidate, never more than can still run. */
  function proposalsWanted(): number {
    if (whyNoProposal() !== null) return 0;
    const freeSlots = config.parallel - slotsBusy();
    const deeper = boundaryReached() ? boundaryDepth() : 0; // the queue that carries every slot through the boundary
    const want = Math.min(ahead() + Math.max(0, freeSlots) + deeper, remaining());
    const have = run.ready.length + proposing.size;
    // The sweep is instant and must see every earlier proposal's ref to never repeat one: one at a time.
    if (config.proposer === 'sweep') return proposing.size > 0 ? 0 : Math.min(1, want - have);
    return want - have;
  }

  /**
   * --ahead, or as many as keep every slot fed: those still being proposed while the slots train (P·L/T for a
   * proposal of L and a training of T) and one ready a slot besides, so a proposal dropped because a keep
   * overwrote what it edits does not leave a slot waiting for a fresh one.
   */
  function ahead(): number {
    if (config.ahead !== undefined) return config.ahead;
    const inFlight = run.trainingMs > 0 ? Math.ceil((config.parallel * run.proposalMs) / run.trainingMs) : 0;
    return Math.min(MAX_AHEAD_PER_SLOT * config.parallel, inFlight + config.parallel);
  }

  function remaining(): number {
    return config.maxExperiments === undefined ? Infinity : config.maxExperiments - run.nextNumber;
  }

  function boundaryReached(): boolean {
    const every = config.experimentsPerHistory ?? EXPERIMENTS_PER_HISTORY;
    const reached = run.nextNumber - firstNumberHere >= every || workflowInfo().continueAsNewSuggested;
    if (reached) boundaryAt ??= run.nextNumber;
    return reached;
  }

  /**
   * Past the boundary the run waits for its own proposals to settle, then continues as new; the next run's
   * first proposals take as long again. So it stops proposing only once enough are ready to feed every slot
   * through both waits, or when a whole round of slots has started since the boundary (a queue that never fills).
   */
  function closingForBoundary(): boolean {
    if (!closing && boundaryReached()) {
      closing = run.ready.length >= boundaryDepth() || run.nextNumber - boundaryAt! >= config.parallel;
    }
    return closing;
  }

  /**
   * Trainings expected to end while this run's proposals settle and the next run's first ones are made: at least one
   * a slot, at most what a slow proposer is allowed in flight.
   */
  function boundaryDepth(): number {
    const ends = run.trainingMs > 0 ? Math.ceil((config.parallel * 2 * run.proposalMs) / run.trainingMs) : 0;
    return Math.min(Math.max(config.parallel, Math.min(ends, MAX_AHEAD_PER_SLOT * config.parallel)), remaining());
  }

  /** Nothing of this run's own is in flight (children are carried over; activities are not). */
  function pipelineSettled(): boolean {
    return proposing.size === 0 && rebasing.size === 0 && starting === 0 && !recording;
  }

  function idle(): boolean {
    return pipelineSettled() && run.launched.length === 0;
  }

  function currentParent(): string {
    return run.best?.commit ?? run.setup.baseCommit;
  }

  /** The baseline holds its slots until it is recorded: a failed baseline ends the run before anything else starts. */
  function slotsBusy(): number {
    return run.launched.reduce((sum, l) => sum + (l.n === 0 && !run.baselineDone ? l.seeds.length : l.pending), 0);
  }

  function isTraining(l: Launched): boolean {
    return l.pending > 0;
  }

  // ---- proposing --------------------------------------------------------------------------------

  /** One proposal, validated and committed on the current best, into the ready queue; a failure is a row. */
  function propose(key: number): void {
    const parent = currentParent();
    const scope = new CancellationScope();
    const allowance = tokenAllowance();
    proposing.set(key, { scope, parent, allowance });
    const started = Date.now();
    scope
      .run(async () => {
        const proposal = await askProposer(key, parent, allowance);
        run.tokensUsed += proposal.tokens;
        run.proposalMs = mean(run.proposalMs, Date.now() - started);
        if (!proposal.ok) return proposalFailed(parent, proposal);
        run.proposerFailures = 0;
        const commit = await control.commitProposal.executeWithOptions(
          summary(`proposal ${key}`, `commit: ${proposal.description}`),
          [{ config, key, parent, description: proposal.description, files: proposal.files }],
        );
        const { description, edits, files, change, tokens, fixes, temperature } = proposal;
        run.ready.push({ key, parent, commit, description, edits, files, change, tokens, fixes, temperature });
      })
      .catch((err) => {
        if (!isCancellation(err)) fatal = err;
      })
      .finally(() => {
        proposing.delete(key);
        tick++;
      });
  }

  async function askProposer(key: number, parent: string, tokenAllowance: number | undefined): Promise<Proposal> {
    const crashed = repairable();
    const inFlight = [...run.launched.map((l) => l.description), ...run.ready.map((r) => r.description)].filter(
      Boolean,
    );
    const what = crashed ? `propose (${config.proposer}, may repair ${crashed.id})` : `propose (${config.proposer})`;
    try {
      return await proposer.propose.executeWithOptions(
        { ...summary(`proposal ${key}`, what), activityId: proposalActivityId(config.tag, key) },
        [{ config, key, parent, crashed, inFlight, tokenAllowance }],
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (failureType(err) === 'LlmRefused') haltRun(causeOf(err)); // its row says so too
      return { ok: false, reason: causeOf(err), tokens: 0 };
    }
  }

  /** The last training crash, offered for repair a bounded number of times whatever happens in between. */
  function repairable(): ExperimentRecord | undefined {
    if (
      config.proposer !== 'llm' ||
      !run.crash ||
      run.crash.shown >= REPAIRS_PER_CRASH ||
      run.crash.depth >= REPAIRS_IN_A_ROW
    )
      return undefined;
    run.crash.shown++;
    return run.crash.record;
  }

  /** A failed proposal is an experiment with a row (commit 0000000), unless the run has all it may have. */
  function proposalFailed(parent: string, proposal: Extract<Proposal, { ok: false }>): void {
    if (proposal.final) {
      proposalsOver ??= proposal.reason;
      return;
    }
    run.proposerFailures++;
    const limit = config.maxProposerFailures ?? PROPOSER_FAILURES_IN_A_ROW;
    if (run.proposerFailures >= limit)
      haltRun(`the proposer failed ${limit} times in a row (last: ${proposal.reason})`);
    if (config.maxExperiments !== undefined && run.nextNumber >= config.maxExperiments) return;
    const n = run.nextNumber++;
    const id = experimentId(config.tag, n);
    const startedAt = new Date().toISOString();
    const results = [untrained(`proposer failed: ${proposal.reason}`)];
    run.launched.push({
      id,
      n,
      parent,
      description: '',
      proposal: null,
      tokens: proposal.tokens,
      hasWorkflow: false,
      startedAt,
      commit: null,
      seeds: [],
      results,
      pending: 0,
    });
    run.toJudge.push(id);
  }

  /** The best moved: re-apply a queued proposal's edits on it, or drop it so a fresh one is proposed. */
  async function rebase(r: Ready): Promise<void> {
    const onto = currentParent();
    rebasing.add(r.key);
    try {
      const rebased = await control.rebaseProposal.executeWithOptions(
        summary(`proposal ${r.key}`, `rebase onto ${onto.slice(0, 7)}`),
        [{ config, key: r.key, onto, description: r.description, edits: r.edits }],
      );
      if (rebased.ok)
        Object.assign(r, { parent: onto, commit: rebased.commit, files: rebased.files, change: rebased.change });
      else {
        run.ready = run.ready.filter((x) => x !== r);
        describe(`proposal ${r.key} no longer applies to the best (${rebased.reason}): proposing afresh`);
      }
    } catch (err) {
      if (!isCancellation(err)) fatal = err;
    } finally {
      rebasing.delete(r.key);
      tick++;
    }
  }

  /** The budget no proposal in flight has reserved: a proposal may spend only its allowance. */
  function unreservedTokens(): number | undefined {
    if (config.maxTokensTotal === undefined) return undefined;
    const reserved = [...proposing.values()].reduce((sum, p) => sum + (p.allowance ?? 0), 0);
    return config.maxTokensTotal - run.tokensUsed - reserved;
  }

  /** A share of what is left, so proposals in flight together all get some; the total never exceeds the budget. */
  function tokenAllowance(): number | undefined {
    const left = unreservedTokens();
    return left === undefined
      ? undefined
      : Math.min(left, Math.max(MIN_TOKEN_ALLOWANCE, Math.floor(left / (ahead() + 1))));
  }

  // ---- training -----------------------------------------------------------------------------------

  /** Gives the next number to a ready proposal (or the baseline) and starts its child workflow. */
  function launch(proposal: Ready | null): void {
    const n = run.nextNumber++;
    const id = experimentId(config.tag, n);
    const description = proposal?.description ?? 'baseline';
    const parent = proposal?.parent ?? null;
    const startedAt = new Date().toISOString();
    const runs = proposal ? 1 : Math.max(1, config.baselineRuns ?? 1); // the baseline's repeats run side by side
    const seeds = Array.from({ length: runs }, (_, i) => seedOf(config, n, i));
    const commit = proposal ? null : run.setup.baseCommit;
    const tokens = proposal?.tokens ?? 0;
    const results = seeds.map(() => null);
    run.launched.push({
      id,
      n,
      parent,
      description,
      proposal,
      tokens,
      hasWorkflow: true,
      startedAt,
      commit,
      seeds,
      results,
      pending: runs,
    });
    starting++;
    void CancellationScope.nonCancellable(async () => {
      let child;
      try {
        const files = proposal?.files ?? (await control.readEditable(config, run.setup.baseCommit));
        const { baseCommit, harnessDigest, gpuQueue } = run.setup;
        child = await startChild(experimentWorkflow, {
          workflowId: legacyWorkflowId(id),
          args: [
            {
              config,
              experimentId: id,
              n,
              parent,
              commit: proposal ? null : baseCommit,
              label: proposal?.commit ?? baseCommit,
              description,
              files,
              harnessDigest,
              gpuQueue,
              seeds,
            },
          ],
          parentClosePolicy: ParentClosePolicy.ABANDON, // it trains and reports even after this run continued as new
          typedSearchAttributes: [{ key: RESEARCH_TAG, value: config.tag }],
          staticSummary: `${id}: ${description}`.slice(0, 200),
        });
      } catch (err) {
        return reportUntrained(id, `could not start its workflow: ${causeOf(err)}`);
      } finally {
        starting--;
        tick++;
      }
      // Reports by signal; this only catches a child that failed without reporting (a bug, or terminated by hand).
      await child.result().catch((err) => reportUntrained(id, `its workflow failed: ${causeOf(err)}`));
    });
  }

  function reportUntrained(id: string, problem: string): void {
    const l = run.launched.find((x) => x.id === id);
    if (!l || l.pending === 0) return;
    l.results = l.results.map((r) => r ?? untrained(problem));
    l.pending = 0;
    run.toJudge.push(id);
    tick++;
  }

  // ---- deciding and recording, one at a time ------------------------------------------------------

  /** The baseline first: nothing can be judged before it has set the bar. */
  function nextToRecord(): Launched | undefined {
    const id = run.baselineDone ? run.toJudge[0] : run.toJudge.find((x) => x === experimentId(config.tag, 0));
    return run.launched.find((l) => l.id === id);
  }

  async function recordInOrder(): Promise<void> {
    recording = true;
    try {
      for (let next = nextToRecord(); next; next = nextToRecord()) await decideAndRecord(next);
    } finally {
      recording = false;
      tick++;
    }
  }

  async function decideAndRecord(launched: Launched): Promise<void> {
    run.toJudge = run.toJudge.filter((id) => id !== launched.id);
    const outcome = judge(launched);
    if (outcome.status === 'confirm') return confirm(launched, outcome.reason);
    const results = launched.results as TrainingResult[];
    if (outcome.status !== 'crash' && launched.hasWorkflow)
      run.noise = withGroup(
        run.noise,
        results.map((r) => r.metrics.val_bpb),
      );
    const previousBest = run.best;
    if (outcome.status === 'keep')
      run.best = { experimentId: launched.id, commit: launched.commit!, valBpb: outcome.valBpb! };
    if (launched.n === 0) run.baselineDone = true;
    for (const r of results) noteSandbox(r);
    const entry = recordOf(launched, results, outcome);
    const move =
      outcome.status === 'keep' && previousBest ? { from: previousBest.commit, to: launched.commit! } : undefined;
    noteCrash(launched, entry); // now, not after the row is written: the next proposal may already be starting
    await CancellationScope.nonCancellable(async () => {
      try {
        await control.recordExperiment.executeWithOptions(summary(entry.id, recordWhat(entry, move !== undefined)), [
          { config, record: entry, move },
        ]);
      } catch (err) {
        if (failureType(err) !== 'RepoError') throw err;
        haltRun(causeOf(err)); // the row is written, or cannot be: either way the night cannot go on
      }
      if (!launched.hasWorkflow) return;
      await getExternalWorkflowHandle(legacyWorkflowId(entry.id))
        .signal(decidedSignal, { status: entry.status, reason: entry.reason, valBpb: entry.valBpb })
        .catch(() => undefined); // terminated by hand: it hears nothing
    });
    run.launched = run.launched.filter((l) => l !== launched);
    run.experimentsDone++;
    if (entry.status === 'keep') run.experimentsKept++;
    run.recent = [...run.recent, { ...entry, logTail: undefined }].slice(-RECENT_KEPT);
    publish(entry);
    // Without a baseline nothing in flight can be judged: it is cancelled.
    if (launched.n === 0 && entry.status !== 'keep')
      haltRun(`the baseline did not score (${entry.reason}); fix the research repo and start again`, true);
  }

  /** A near-tie: one more training on another seed before it is decided. */
  function confirm(launched: Launched, reason: string): void {
    const seed = seedOf(config, launched.n, launched.seeds.length);
    launched.seeds.push(seed);
    launched.results.push(null);
    launched.pending++;
    void CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(legacyWorkflowId(launched.id))
        .signal(repeatSignal, { seed })
        .catch(() => reportUntrained(launched.id, 'its workflow is gone')),
    );
    describe(`${launched.id} ${reason}`);
  }

  /** The experiment's row: the mean of its runs, and every run in results.jsonl. */
  function recordOf(launched: Launched, results: TrainingResult[], outcome: Decision): ExperimentRecord {
    const proposal = launched.proposal;
    const runs = results.map((r, i) => ({
      seed: launched.seeds[i],
      valBpb: r.metrics.val_bpb ?? null,
      seconds: r.seconds,
      worker: r.worker,
      metrics: r.metrics,
    }));
    return {
      id: launched.id,
      n: launched.n,
      parent: launched.parent,
      commit: launched.commit,
      description: launched.description || outcome.reason,
      status: outcome.status,
      reason: outcome.reason,
      valBpb: outcome.valBpb,
      memoryGb: Math.max(...results.map((r) => r.metrics.peak_vram_mb ?? 0)) / 1024,
      metrics: { ...results[0].metrics, ...(outcome.valBpb === null ? {} : { val_bpb: outcome.valBpb }) },
      proposer: launched.n === 0 ? 'baseline' : config.proposer,
      tokens: launched.tokens,
      fixes: proposal?.fixes,
      change: proposal?.change,
      temperature: proposal?.temperature,
      seed: launched.seeds[0],
      runs: launched.hasWorkflow ? runs : undefined,
      confirmed: outcome.status === 'keep' && launched.n > 0 && results.length > 1 ? true : undefined,
      sigma: sigmaOf(run.noise) ?? undefined,
      startedAt: launched.startedAt,
      finishedAt: new Date().toISOString(),
      trainingSeconds: results.reduce((sum, r) => sum + r.seconds, 0),
      logTail: outcome.status === 'crash' ? results.find((r) => r.logTail)?.logTail || undefined : undefined,
    };
  }

  /**
   * Keep-if-better (with the noise floor) against the best at completion. A win on a parent that was
   * overtaken while it trained may not move the branch (it would drop the newer keep): it is recorded
   * as such and its edits are queued again, to be rebased onto the new best and trained there.
   */
  function judge(launched: Launched): Judgement {
    const results = launched.results as TrainingResult[];
    if (launched.n > 0 && run.best === null)
      return { status: 'discard', reason: 'the baseline did not score: nothing to compare with', valBpb: null };
    const outcome = judgeRuns(results, run.best, config.minImprovement, run.noise, config.confirmZ);
    if (outcome.status === 'confirm' && stop) {
      return {
        status: 'discard',
        reason: `${outcome.reason.replace(/: confirming$/, '')}; not confirmed: the run is stopping`,
        valBpb: outcome.valBpb,
      };
    }
    if (outcome.status !== 'keep' || launched.n === 0 || launched.parent === run.best!.commit || !launched.proposal)
      return outcome;
    const stale = launched.parent!.slice(0, 7);
    if (whyEnding() === null) run.ready.unshift({ ...launched.proposal, parent: launched.parent! });
    return {
      status: 'discard',
      reason: `beat the best ${run.best!.valBpb.toFixed(6)} but trained on ${stale}, overtaken meanwhile: queued again on the new best`,
      valBpb: outcome.valBpb,
    };
  }

  function noteCrash(launched: Launched, entry: ExperimentRecord): void {
    if (entry.status !== 'crash') run.crash = null;
    else if (launched.commit && launched.n > 0 && !launched.results.some((r) => r?.problem === 'cancelled')) {
      const depth =
        launched.proposal?.fixes && launched.proposal.fixes === run.crash?.record.id ? run.crash.depth + 1 : 0;
      run.crash = { record: { ...entry, logTail: entry.logTail?.slice(-CRASH_LOG_CHARS) }, shown: 0, depth };
    }
  }

  function noteSandbox(result: TrainingResult): void {
    const warning = `training without the sandbox on ${result.worker} (gpu-worker --no-sandbox)`;
    if (result.sandboxed === false && !run.warnings.includes(warning)) run.warnings.push(warning);
  }

  // ---- stopping ------------------------------------------------------------------------------------

  function stopRun(reason: string, cancelInFlight: boolean): void {
    stop ??= { cancelInFlight, reason };
    if (!cancelInFlight) return;
    stop.cancelInFlight = true;
    for (const p of proposing.values()) p.scope.cancel();
    for (const l of run.launched.filter(isTraining)) {
      void CancellationScope.nonCancellable(() =>
        getExternalWorkflowHandle(legacyWorkflowId(l.id))
          .cancel()
          .catch(() => undefined),
      );
    }
    tick++;
  }

  /** The run cannot go on: nothing new starts, what is in flight finishes (or, with `cancel`, is cancelled). */
  function haltRun(reason: string, cancel = false): void {
    halt ??= reason;
    stopRun(reason, cancel);
  }

  async function finish(reason: string): Promise<StatusView> {
    if (halt) {
      describe(`failed: ${halt}`);
      throw ApplicationFailure.nonRetryable(halt, 'RunHalted');
    }
    const verdict = await verify(reason);
    finalState = stop ? 'stopped' : 'completed';
    describe(`${finalState}: ${reason}${verdict ? `\n\nverdict: ${verdict}` : ''}`);
    return { ...status(), reason, verdict };
  }

  /** The morning verdict, when the run ended by itself with a keep to verify (not at a deadline: that is the user's). */
  async function verify(reason: string): Promise<string | undefined> {
    if (
      !config.verifyRuns ||
      stop ||
      !run.best ||
      run.best.commit === run.setup.baseCommit ||
      reason.startsWith('deadline')
    )
      return undefined;
    describe(`verifying: the baseline and the best, ${config.verifyRuns} runs each`);
    const verdict = await executeChild(verifyWorkflow, {
      workflowId: legacyWorkflowId(`${config.tag}.verify`),
      args: [{ config, runs: config.verifyRuns }],
      typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.verify` }],
    });
    return verdict.line;
  }

  // ---- what the Web UI and `status` show -------------------------------------------------------------

  function state(): RunState {
    if (finalState) return finalState;
    if (stop) return 'stopping';
    return run.paused ? 'paused' : 'running';
  }

  function status(): StatusView {
    const inFlight: InFlight[] = [
      ...run.launched.map((l) => ({
        id: l.id,
        phase: isTraining(l) ? ('training' as const) : ('deciding' as const),
        description: l.description,
        heartbeat: null,
      })),
      ...run.ready.map((r) => ({
        id: proposalActivityId(config.tag, r.key),
        phase: 'queued' as const,
        description: r.description,
        heartbeat: null,
      })),
      ...[...proposing.keys()].map((key) => ({
        id: proposalActivityId(config.tag, key),
        phase: 'proposing' as const,
        description: '',
        heartbeat: null,
      })),
    ];
    return {
      tag: config.tag,
      workflowId: workflowIdFor(config.tag),
      state: state(),
      experimentsDone: run.experimentsDone,
      experimentsKept: run.experimentsKept,
      best: run.best && { commit: run.best.commit, valBpb: run.best.valBpb },
      inFlight,
      tokensUsed: run.tokensUsed,
      reason: stop?.reason ?? proposalsOver ?? undefined,
      recent: run.recent,
      warnings: run.warnings,
      noise: noise() ?? undefined,
    };
  }

  function noise(): { sigma: number; runs: number } | null {
    const sigma = sigmaOf(run.noise);
    return sigma === null ? null : { sigma, runs: run.noise.runs };
  }

  function publish(last: ExperimentRecord): void {
    upsertSearchAttributes([
      { key: EXPERIMENTS_DONE, value: run.experimentsDone },
      { key: EXPERIMENTS_KEPT, value: run.experimentsKept },
      ...(run.best ? [{ key: BEST_VAL_BPB, value: run.best.valBpb }] : []),
    ]);
    upsertMemo({
      repo: config.repo,
      proposer: config.proposer,
      bestCommit: run.best?.commit ?? null,
      sigma: noise()?.sigma ?? null,
      warnings: run.warnings,
    });
    const score = last.valBpb === null ? '' : ` val_bpb ${last.valBpb.toFixed(6)}`;
    describe(`${last.id} ${last.status}${score}: ${last.description}`);
  }

  function describe(now: string): void {
    const best = run.best
      ? `best val_bpb ${run.best.valBpb.toFixed(6)} (${run.best.commit.slice(0, 7)})`
      : 'no best yet';
    const pipeline = `${run.launched.filter(isTraining).length} training, ${run.ready.length} ready, ${proposing.size} proposing`;
    const warn = run.warnings.length ? `\n\n⚠ ${run.warnings.join('; ')}` : '';
    const sigma = noise() ? ` · noise σ ${noise()!.sigma.toFixed(6)} (${noise()!.runs} runs)` : '';
    setCurrentDetails(
      `**${state()}** · ${run.experimentsDone} done, ${run.experimentsKept} kept · ${best}${sigma} · ${pipeline}\n\nlast: ${now}${warn}`,
    );
  }
}

/** A run about to start: its setup is filled in by the first activity. */
function freshRun(): Carried {
  return {
    setup: { baseCommit: '', harnessDigest: '', gpuQueue: '' },
    nextNumber: 0,
    nextKey: 1,
    experimentsDone: 0,
    experimentsKept: 0,
    best: null,
    baselineDone: false,
    tokensUsed: 0,
    paused: false,
    recent: [],
    crash: null,
    proposerFailures: 0,
    proposalMs: 0,
    trainingMs: 0,
    ready: [],
    launched: [],
    toJudge: [],
    noise: NO_NOISE,
    warnings: [],
  };
}

function recordWhat(entry: ExperimentRecord, moves: boolean): string {
  return `record ${entry.status}${entry.valBpb === null ? '' : ` ${entry.valBpb.toFixed(6)}`}${moves ? ', move the branch' : ''}`;
}
