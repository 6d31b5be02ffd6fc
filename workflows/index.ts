// The workflow bundle's entry: everything the control worker registers.
export { researchWorkflow } from './research';
export type { Carried } from './research';
export { pauseSignal, resumeSignal, stopSignal, statusQuery } from './signals';
export { experimentWorkflow, trainedSignal, decidedSignal } from './experiment';
export { verifyWorkflow, ablateWorkflow, compareWorkflow, sensitivityWorkflow } from './morning';
