// A proposal for the study: the proposer asked (an LLM or the sweep) on the best it was asked on, and its
// files committed. Whatever happens is an answer to the state machine: a commit, or a failure with its tokens.
import { isCancellation, proxyActivities } from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import { control } from './experiment';
import { causeOf, failureType, summary, tokensSpent } from './failures';
import type { Answer, Command } from './study';
import { CONTROL_QUEUE, proposalActivityId, type RunConfig } from './types';

/** The proposer, which may stream from a slow local model for minutes. */
export const proposer = proxyActivities<ControlActivities>({
  taskQueue: CONTROL_QUEUE,
  startToCloseTimeout: '30 minutes', // a slow local model streams for minutes; silence is caught by the heartbeat
  heartbeatTimeout: '30 seconds', // …and a dead proposer within half a minute
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
});

/** One proposal, committed on the best it was asked on; a failure (its tokens counted) is an answer too. */
export async function proposal(config: RunConfig, c: Extract<Command, { type: 'propose' }>): Promise<Answer> {
  const { key, base } = c;
  try {
    const what = c.crashed ? `propose (${config.proposer}, may repair ${c.crashed.id})` : `propose (${config.proposer})`;
    const p = await proposer.propose.executeWithOptions(
      { ...summary(`proposal ${key}`, what), activityId: proposalActivityId(config.tag, key) },
      [{ config, key, parent: base, crashed: c.crashed ?? undefined, inFlight: c.inFlight, tokenAllowance: c.allowance ?? undefined }],
    );
    if (!p.ok) return { type: 'proposalFailed', key, reason: p.reason, tokens: p.tokens, final: p.final };
    // A repair edits the crashed experiment's files: its commit goes on that one's parent, the base it merges from.
    const parent = p.fixes && c.crashed?.parent ? c.crashed.parent : base;
    const commit = await control.commitProposal.executeWithOptions(summary(`proposal ${key}`, `commit: ${p.description}`), [
      { config, key, parent, description: p.description, files: p.files },
    ]);
    const { description, tokens, change, fixes, temperature, by, dropped } = p;
    return { type: 'proposed', key, commit, description, tokens, change, fixes, temperature, ...(by ? { by } : {}), ...(dropped ? { dropped } : {}) };
  } catch (err) {
    if (isCancellation(err)) return { type: 'proposalFailed', key, reason: 'cancelled', tokens: 0, cancelled: true };
    return { type: 'proposalFailed', key, reason: causeOf(err), tokens: tokensSpent(err), refused: failureType(err) === 'LlmRefused' };
  }
}
