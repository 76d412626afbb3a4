import type { Database } from '../db/client';
import { recordCaseState, type RecordCaseStateInput } from './case-state';
import { sendReminder, type SendReminderInput } from './reminders';

export type ActivityDeps = { db: Database };

/** Every side effect the collection workflow has, bound to its dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    sendReminder: (input: SendReminderInput) => sendReminder(deps, input),
    recordCaseState: (input: RecordCaseStateInput) => recordCaseState(deps, input),
  };
}

export type Activities = ReturnType<typeof createActivities>;
