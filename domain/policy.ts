import { z } from 'zod';
import { actions, isGated, tones } from './ladder';
import { roles } from './roles';

/**
 * A collection policy: the written timeline a business follows for every overdue account
 * (domain.md), as data. Versioned and validated here; stored in the database; pinned by each
 * case when it starts, so editing a policy never changes a running case.
 */

// The step logic the workflow runs lives in ./ladder (no zod there: see its header).
export { actions, gatedActions, isGated, referralOffsetAfter, stepApplies, tones } from './ladder';
export type { Action, ApprovalKind, GatedAction, Tone } from './ladder';

const timeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24-hour)');
const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export const approvalRuleSchema = z.object({
  /** Roles whose holders may decide; nobody may decide a request they made. */
  approverRoles: z.array(z.enum(roles)).min(1).default(['approver', 'admin']),
  /** Days the approvers have before a reminder goes to them. */
  deadlineDays: z.number().int().positive().default(5),
  /** Days after the deadline before the request escalates to the fallback approvers. */
  escalateAfterDays: z.number().int().positive().default(3),
  /** Who hears about an escalated request (e-mail addresses). */
  fallbackApprovers: z.array(z.email()).default([]),
  /** What happens when the request is rejected. */
  onReject: z.enum(['continue_in_house', 'hold', 'write_off']).default('continue_in_house'),
});
export type ApprovalRule = z.infer<typeof approvalRuleSchema>;

/** Chooses a step by the amount still owed, in the invoice's minor units. */
export const amountConditionSchema = z
  .object({
    outstandingAtLeastMinor: z.number().int().nonnegative().optional(),
    outstandingBelowMinor: z.number().int().positive().optional(),
  })
  .refine((c) => c.outstandingAtLeastMinor !== undefined || c.outstandingBelowMinor !== undefined, {
    error: 'give outstandingAtLeastMinor, outstandingBelowMinor or both',
  });
export type AmountCondition = z.infer<typeof amountConditionSchema>;

export const stepSchema = z
  .object({
    /** Stable name of the step; with the workflow id, the idempotency key of what it does. */
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, _ and - only'),
    /** Days from the due date; negative is before it. */
    offsetDays: z.number().int().min(-60).max(3650),
    action: z.enum(actions),
    /** Template name, looked up per locale; see activities/templates. */
    template: z.string().min(1),
    tone: z.enum(tones),
    /** Only run when the amount outstanding meets this (e.g. agency only above court costs). */
    when: amountConditionSchema.optional(),
    /** Required for gated actions. */
    approval: approvalRuleSchema.optional(),
    /** For letters: send by certified mail. */
    certified: z.boolean().optional(),
  })
  .refine((s) => !isGated(s.action) || s.approval !== undefined, {
    path: ['approval'],
    error: 'a gated action (agency_referral, legal_action, write_off, sell_debt) needs an approval rule',
  });
export type PolicyStep = z.infer<typeof stepSchema>;

export const contactWindowSchema = z
  .object({
    /** ISO weekdays on which the debtor may be contacted: 1 = Monday ... 7 = Sunday. */
    weekdays: z.array(z.number().int().min(1).max(7)).min(1).default([1, 2, 3, 4, 5]),
    start: timeOfDay.default('09:00'),
    end: timeOfDay.default('18:00'),
  })
  .refine((w) => minutesOf(w.start) < minutesOf(w.end), { path: ['end'], error: 'must be after start' })
  // Never before 08:00 or after 21:00 local time, whatever a policy says (FDCPA-style rule).
  .refine((w) => minutesOf(w.start) >= 8 * 60 && minutesOf(w.end) <= 21 * 60, {
    error: 'contact windows must lie between 08:00 and 21:00 local time',
  });
export type ContactWindow = z.infer<typeof contactWindowSchema>;

export const policySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/),
    version: z.number().int().positive(),
    description: z.string().default(''),
    contactWindow: contactWindowSchema.default({ weekdays: [1, 2, 3, 4, 5], start: '09:00', end: '18:00' }),
    /** Days after a promised payment date before the promise counts as broken. */
    promiseGraceDays: z.number().int().nonnegative().default(3),
    /** Agency commission in basis points of the amount, shown to approvers against the debt. */
    agencyCommissionBps: z.number().int().min(0).max(10_000).default(2_500),
    /** Expected court and attorney costs in minor units, shown to approvers. */
    legalCostsMinor: z.number().int().nonnegative().default(150_000),
    /** Who approves a reduced lump-sum settlement a collector proposes, and by when. */
    settlementApproval: approvalRuleSchema.default({
      approverRoles: ['approver', 'admin'],
      deadlineDays: 2,
      escalateAfterDays: 2,
      fallbackApprovers: [],
      onReject: 'continue_in_house',
    }),
    /**
     * The case continues as new (a fresh history, its state carried over) when the server
     * suggests it or its history passes this many events, whichever comes first.
     */
    continueAsNewAfterEvents: z.number().int().min(20).max(40_000).default(5_000),
    steps: z.array(stepSchema).min(1),
  })
  .superRefine((policy, ctx) => {
    const ids = new Set<string>();
    policy.steps.forEach((step, i) => {
      if (ids.has(step.id)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'id'], message: `duplicate step id "${step.id}"` });
      ids.add(step.id);
      const previous = policy.steps[i - 1];
      if (previous && previous.offsetDays > step.offsetDays) {
        ctx.addIssue({ code: 'custom', path: ['steps', i, 'offsetDays'], message: 'steps must be in time order' });
      }
    });
  });
export type CollectionPolicy = z.infer<typeof policySchema>;

const approval = (onReject: ApprovalRule['onReject']): ApprovalRule => ({
  approverRoles: ['approver', 'admin'],
  deadlineDays: 5,
  escalateAfterDays: 3,
  fallbackApprovers: [],
  onReject,
});

/** Below this (in minor units), agency commission or court costs would eat what can be recovered. */
const SMALL_BALANCE_MINOR = 50_000;

/**
 * The default timeline, after domain.md: a heads-up before the due date, a courtesy reminder
 * on day 1, a letter and a call on day 7, a firmer e-mail and credit hold on day 30, a final
 * notice on day 45 naming the referral date, agency referral (or, for small balances,
 * write-off) around day 60, and legal action or write-off after day 90, each by approval.
 */
export const defaultPolicy: CollectionPolicy = policySchema.parse({
  name: 'default',
  version: 1,
  description: "Domain timeline: friendly first, firmer later, a person decides anything that ends in-house collection.",
  steps: [
    { id: 'pre-due', offsetDays: -3, action: 'email', template: 'pre_due', tone: 'friendly' },
    { id: 'day-1', offsetDays: 1, action: 'email', template: 'courtesy_reminder', tone: 'friendly' },
    { id: 'day-7-letter', offsetDays: 7, action: 'letter', template: 'reminder_letter', tone: 'firm' },
    { id: 'day-7-call', offsetDays: 7, action: 'call_task', template: 'first_call', tone: 'firm' },
    { id: 'day-30', offsetDays: 30, action: 'email', template: 'firm_reminder', tone: 'firm' },
    { id: 'day-30-hold', offsetDays: 30, action: 'credit_hold', template: 'credit_hold', tone: 'firm' },
    { id: 'final-notice', offsetDays: 45, action: 'final_notice', template: 'final_notice', tone: 'final', certified: true },
    {
      id: 'agency',
      offsetDays: 60,
      action: 'agency_referral',
      template: 'agency_referral',
      tone: 'final',
      when: { outstandingAtLeastMinor: SMALL_BALANCE_MINOR },
      approval: approval('continue_in_house'),
    },
    {
      id: 'small-write-off',
      offsetDays: 60,
      action: 'write_off',
      template: 'write_off',
      tone: 'final',
      when: { outstandingBelowMinor: SMALL_BALANCE_MINOR },
      approval: approval('hold'),
    },
    {
      id: 'legal',
      offsetDays: 90,
      action: 'legal_action',
      template: 'legal_action',
      tone: 'final',
      when: { outstandingAtLeastMinor: SMALL_BALANCE_MINOR },
      approval: approval('write_off'),
    },
  ],
});
