import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { deliveredCommandNames } from '../../db/schema';
import { externalIdSchema } from '../../domain/schemas';
import type { AppContext } from '../app';
import type { Caller } from '../auth';
import { sendCaseCommand, withdrawCommand } from '../case-command-service';
import { findStuckCases, restartCase } from '../operations-service';
import { HttpProblem } from '../problem';
import { stuckQuerySchema } from '../routes/operations';
import { caseActionForm, reasonForm } from './case-page';
import { formatInstant, kindLabel } from './format';
import { html, layout } from './html';
import { csrfValid, requirePageRole } from './session';

const reasonFormSchema = z.object({ reason: z.string().trim().min(3, 'Give a reason of at least 3 characters').max(2000), key: z.uuid().optional() });

/** Cases that will not move on by themselves, with the reason, a Temporal UI link and what to do. */
export function registerOperationsPages({ db, services }: AppContext, app: FastifyInstance): void {
  app.get('/ui/operations', { onRequest: requirePageRole(db.db, 'admin', 'collector', 'viewer') }, async (request, reply) => {
    const user = request.pageUser!;
    const query = stuckQuerySchema.safeParse(request.query);
    const options = query.success ? query.data : stuckQuerySchema.parse({});
    const stuck = await findStuckCases(services, { ...options, describeLimit: 100 });
    const canAct = user.role !== 'viewer';
    // Only an invoice id is echoed back, never free text from the URL.
    const notices = request.query as { resumed?: unknown; restarted?: unknown; queued?: unknown; withdrawn?: unknown };
    const resumed = externalIdSchema.safeParse(notices.resumed);
    const restarted = externalIdSchema.safeParse(notices.restarted);
    const queued = externalIdSchema.safeParse(notices.queued);
    const withdrawn = z.enum(deliveredCommandNames).safeParse(notices.withdrawn);
    const body = html`<h1>Stuck cases</h1>
${resumed.success ? html`<p class="notice" role="status">Sent to invoice ${resumed.data}: the case goes on.</p>` : ''}
${queued.success ? html`<p class="notice" role="status">The resume of invoice ${queued.data} is stored and on its way: it reaches the case as soon as Temporal answers, after any earlier command of the case.</p>` : ''}
${withdrawn.success ? html`<p class="notice" role="status">The ${withdrawn.data} command was withdrawn: it will not reach its case, and the commands behind it go on.</p>` : ''}
${restarted.success ? html`<p class="notice" role="status">The case of invoice ${restarted.data} runs again, paused: check its timeline, then resume it.</p>` : ''}
<p class="muted">Activities failing on attempt ${options.minAttempts} or later, steps blocked by a permanent error, approvals past their deadline, cases paused for more than ${options.pausedForDays} days or restarted and not yet resumed, cases whose start keeps failing or whose workflow is gone, and payments, credit notes, cancellations and case commands stored but not yet applied.</p>
${
  stuck.length === 0
    ? html`<p>Nothing is stuck.</p>`
    : html`<table><thead><tr><th>Problem</th><th>Case</th><th>Reason</th><th>Since</th><th>Action</th></tr></thead><tbody>
${stuck.map(
  (c) => html`<tr data-workflow-id="${c.workflowId}">
  <td>${kindLabel(c.kind)}</td>
  <td>${
    c.kind === 'payment_unfinished' && c.invoiceExternalId === '?'
      ? html`<span class="muted">no invoice</span>`
      : html`<a href="/ui/cases/${encodeURIComponent(c.invoiceExternalId)}">${c.invoiceExternalId}</a><br><span class="muted">${c.customerName}</span>`
  }${c.kind === 'start_failing' || c.kind === 'payment_unfinished' ? '' : html`<br><a href="${c.temporalUiUrl}">Temporal UI</a>`}</td>
  <td>${c.reason}</td>
  <td>${formatInstant(c.since)}</td>
  <td>${
    (c.action === 'resume' || c.action === 'restart') && canAct
      ? caseActionForm(c.invoiceExternalId, user, c.action, c.kind === 'blocked')
      : c.action === 'decide'
        ? html`<a href="/ui/approvals">Decide</a>`
        : c.action === 'finish'
          ? html`<span class="muted">Finish it: <code>POST /webhook-events/${c.webhookEventId}/match</code> with the invoice</span>`
        : c.action === 'withdraw' && canAct
          ? reasonForm(user, { url: `/ui/case-commands/${c.commandId}/withdraw`, id: `withdraw-${c.commandId}`, label: 'Withdraw the command' })
        : c.kind === 'activity_failing'
          ? html`<span class="muted">Retrying by itself (attempt ${c.attempts}); see the failure in the Temporal UI</span>`
          : ''
  }</td>
</tr>`,
)}
</tbody></table>`
}`;
    return reply.type('text/html; charset=utf-8').send(layout({ title: 'Stuck cases', user, body }));
  });

  /**
   * An operator's action from a form, with its reason: `run` does it and says which notice the
   * stuck list shows after it (a query string). A refusal (4xx) is shown on a page, not thrown.
   */
  const formAction = (path: string, title: string, run: (params: Record<string, string>, form: z.infer<typeof reasonFormSchema>, caller: Caller) => Promise<string>) =>
    app.post(path, { onRequest: requirePageRole(db.db, 'admin', 'collector') }, async (request, reply) => {
      const user = request.pageUser!;
      const form = reasonFormSchema.safeParse(request.body);
      const fail = (status: number, text: string) =>
        reply.code(status).type('text/html; charset=utf-8').send(layout({ title, user, body: html`<h1>${title}</h1><p class="error" role="alert">${text}</p><p><a href="/ui/operations">Back to the stuck cases</a></p>` }));
      if (!csrfValid(request, (request.body as { csrf?: unknown } | undefined)?.csrf)) return fail(403, 'The form had expired. Nothing was sent; try again.');
      if (!form.success) return fail(400, form.error.issues.map((i) => i.message).join('; '));
      let notice: string;
      try {
        notice = await run(request.params as Record<string, string>, form.data, request.caller!);
      } catch (err) {
        if (err instanceof HttpProblem && err.status < 500) return fail(err.status, err.detail);
        throw err;
      }
      return reply.redirect(`/ui/operations?${notice}`, 303);
    });
  formAction('/ui/cases/:externalId/resume', 'Not resumed', async ({ externalId }, { reason, key }, caller) => {
    const sent = await sendCaseCommand(services, { externalId: externalId!, name: 'resume', body: { reason }, caller, ...(key ? { idempotencyKey: key } : {}) });
    return `${sent.delivery === 'queued' ? 'queued' : 'resumed'}=${encodeURIComponent(externalId!)}`;
  });
  formAction('/ui/cases/:externalId/restart', 'Not restarted', async ({ externalId }, { reason }, caller) => {
    await restartCase(services, externalId!, reason, caller);
    return `restarted=${encodeURIComponent(externalId!)}`;
  });
  formAction('/ui/case-commands/:id/withdraw', 'Not withdrawn', async ({ id }, { reason }, caller) => {
    const { name } = await withdrawCommand(services, id!, reason, caller);
    return `withdrawn=${encodeURIComponent(name)}`;
  });
}
