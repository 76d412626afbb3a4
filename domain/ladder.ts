import type { CollectionPolicy, PolicyStep } from './policy';

/**
 * The policy's step logic that the collection workflow runs. No zod here, nor in any module
 * the workflow imports at runtime: building zod and the policy schemas inside the worker's
 * workflow sandbox took more CPU per case start than the workflow's own code (BENCHMARKS.md,
 * "Case start rate"). The schemas, and the types they define, stay in ./policy; this module
 * imports those types only. It is preloaded, shared by every workflow in a worker
 * (worker/create-worker.ts): nothing here may hold state a workflow writes.
 */

export const actions = [
  'email',
  'letter',
  'call_task',
  'credit_hold',
  'final_notice',
  'agency_referral',
  'legal_action',
  'write_off',
  'sell_debt',
] as const;
export type Action = (typeof actions)[number];

/** Actions a person must approve before they happen: they end in-house collection. */
export const gatedActions = ['agency_referral', 'legal_action', 'write_off', 'sell_debt'] as const satisfies readonly Action[];
export type GatedAction = (typeof gatedActions)[number];
/** What an approver may be asked to sign off: a gated step, or a settlement offer. */
export type ApprovalKind = GatedAction | 'settlement';
export const isGated = (action: Action): action is GatedAction => (gatedActions as readonly string[]).includes(action);

/** The tone rises step by step: the first message assumes the customer forgot. */
export const tones = ['friendly', 'firm', 'final'] as const;
export type Tone = (typeof tones)[number];

/** Whether a step applies to a case with this much outstanding. */
export function stepApplies(step: PolicyStep, outstandingMinor: number): boolean {
  if (!step.when) return true;
  const { outstandingAtLeastMinor: atLeast, outstandingBelowMinor: below } = step.when;
  return (atLeast === undefined || outstandingMinor >= atLeast) && (below === undefined || outstandingMinor < below);
}

/**
 * The agency referral a final notice may name: the first gated step after it that applies at
 * this balance, if that step is an agency referral. A notice never threatens an action the
 * policy will not take (below its amount threshold, a write-off is proposed instead), nor an
 * action the notice's words do not name.
 */
export function referralOffsetAfter(policy: CollectionPolicy, stepIndex: number, outstandingMinor: number): number | undefined {
  const next = policy.steps.slice(stepIndex + 1).find((s) => isGated(s.action) && stepApplies(s, outstandingMinor));
  return next?.action === 'agency_referral' ? next.offsetDays : undefined;
}
