// The workflow bundle's entry point: every workflow the worker runs is exported here.
export { invoiceCollection } from './invoice-collection';
export { overdueSweep } from './overdue-sweep';
