/** Who may do what: API keys carry one of these roles, policies name them as approvers. */
export const roles = ['admin', 'collector', 'approver', 'viewer'] as const;
export type Role = (typeof roles)[number];
