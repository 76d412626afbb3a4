import type { Database } from '../db/client';
import { recordCaseState, type RecordCaseStateInput } from './case-state';
import {
  createCallTask,
  placeCreditHold,
  recordCaseEvent,
  sendEmail,
  sendLetter,
  type ChannelDeps,
  type StepInput,
} from './channels';

export type ActivityDeps = ChannelDeps & { db: Database };

/** Every side effect the collection workflow has, bound to its dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    sendEmail: (input: StepInput) => sendEmail(deps, input),
    sendLetter: (input: StepInput & { certified: boolean }) => sendLetter(deps, input),
    createCallTask: (input: StepInput) => createCallTask(deps, input),
    placeCreditHold: (input: StepInput) => placeCreditHold(deps, input),
    recordCaseEvent: (input: Parameters<typeof recordCaseEvent>[1]) => recordCaseEvent(deps, input),
    recordCaseState: (input: RecordCaseStateInput) => recordCaseState(deps, input),
  };
}

export type Activities = ReturnType<typeof createActivities>;
