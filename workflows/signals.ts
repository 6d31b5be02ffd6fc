// What a user sends the study (pause, resume, stop) and asks it (status): the CLI's handles on a night.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { StatusView } from './types';

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal<[{ cancelInFlight: boolean; reason?: string }]>('stop');
export const statusQuery = defineQuery<StatusView>('status');
