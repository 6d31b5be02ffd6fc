// The search attributes that make a run findable and sortable in the Web UI's workflow list.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const RESEARCH_TAG = defineSearchAttributeKey('ResearchTag', SearchAttributeType.KEYWORD);
export const BEST_VAL_BPB = defineSearchAttributeKey('BestValBpb', SearchAttributeType.DOUBLE);
export const EXPERIMENTS_DONE = defineSearchAttributeKey('ExperimentsDone', SearchAttributeType.INT);
export const EXPERIMENTS_KEPT = defineSearchAttributeKey('ExperimentsKept', SearchAttributeType.INT);

// On each experiment's own workflow: the workflow list filtered by ResearchTag reads as the night's table.
export const EXPERIMENT_STATUS = defineSearchAttributeKey('ExperimentStatus', SearchAttributeType.KEYWORD);
export const VAL_BPB = defineSearchAttributeKey('ValBpb', SearchAttributeType.DOUBLE);

export const ALL_SEARCH_ATTRIBUTES = [
  RESEARCH_TAG,
  BEST_VAL_BPB,
  EXPERIMENTS_DONE,
  EXPERIMENTS_KEPT,
  EXPERIMENT_STATUS,
  VAL_BPB,
];
