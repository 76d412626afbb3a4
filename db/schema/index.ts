export * from './customers';
export * from './invoices';
export * from './payments';
export * from './collection-cases';
export * from './approvals';
export * from './communications';
export * from './audit-events';
export * from './api-keys';
