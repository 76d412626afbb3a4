import type { CaseStartDeps } from '../cases/collection-start';
import {
  chaseApprovers,
  executeHandover,
  recordApprovalDecision,
  requestApproval,
  type ApprovalDeps,
  type RequestApprovalInput,
} from './approvals';
import { recordCaseState, type RecordCaseStateInput } from './case-state';
import { openDispute, resolveDispute, type OpenDisputeInput, type ResolveDisputeInput } from './disputes';
import {
  createCallTask,
  deliverEmail,
  markEmailSent,
  placeCreditHold,
  recordCaseEvent,
  sendEmail,
  sendLetter,
  type StepInput,
} from './channels';
import { checkOpenCases, startDueCases, type CheckOpenCasesInput, type StartDueCasesInput } from './sweep';

/** The channels, the database, and the Temporal client and task queue the overdue sweep starts cases with. */
export type ActivityDeps = ApprovalDeps & CaseStartDeps;

/** Every side effect the workflows have, bound to their dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    deliverEmail: (input: StepInput) => deliverEmail(deps, input),
    markEmailSent: (input: Parameters<typeof markEmailSent>[1]) => markEmailSent(deps, input),
    /** Deliver and mark in one: kept for workflows that started before the two were apart. */
    sendEmail: (input: StepInput) => sendEmail(deps, input),
    sendLetter: (input: StepInput & { certified: boolean }) => sendLetter(deps, input),
    createCallTask: (input: StepInput) => createCallTask(deps, input),
    placeCreditHold: (input: StepInput) => placeCreditHold(deps, input),
    recordCaseEvent: (input: Parameters<typeof recordCaseEvent>[1]) => recordCaseEvent(deps, input),
    recordCaseState: (input: RecordCaseStateInput) => recordCaseState(deps, input),
    requestApproval: (input: RequestApprovalInput) => requestApproval(deps, input),
    chaseApprovers: (input: Parameters<typeof chaseApprovers>[1]) => chaseApprovers(deps, input),
    recordApprovalDecision: (input: Parameters<typeof recordApprovalDecision>[1]) => recordApprovalDecision(deps, input),
    executeHandover: (input: Parameters<typeof executeHandover>[1]) => executeHandover(deps, input),
    openDispute: (input: OpenDisputeInput) => openDispute(deps, input),
    resolveDispute: (input: ResolveDisputeInput) => resolveDispute(deps, input),
    startDueCases: (input: StartDueCasesInput) => startDueCases(deps, input),
    checkOpenCases: (input: CheckOpenCasesInput) => checkOpenCases(deps, input),
  };
}

export type Activities = ReturnType<typeof createActivities>;
