// The workflow bundle's entry: everything the control worker registers.
export { researchWorkflow, pauseSignal, resumeSignal, stopSignal, statusQuery } from './research';
export type { Carried } from './research';
export { experimentWorkflow, trainedSignal, decidedSignal } from './experiment';
export { verifyWorkflow, ablateWorkflow } from './morning';
