import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { formatMoney, type Currency } from '../../domain/money';
import { externalIdSchema } from '../../domain/schemas';
import type { AppContext } from '../app';
import { listCallTasks, recordCallOutcome } from '../call-task-service';
import { HttpProblem } from '../problem';
import { formatInstant } from './format';
import { html, layout } from './html';
import { csrfValid, requirePageRole } from './session';

const outcomeFormSchema = z.object({ outcome: z.string().trim().min(3, 'Say what the call achieved, in 3 characters or more').max(2000) });

/** The collectors' calls to make, earliest due first, each with what to say and a form for what came of it. */
export function registerCallsPage({ db, services }: AppContext, app: FastifyInstance): void {
  app.get('/ui/calls', { onRequest: requirePageRole(db.db, 'admin', 'collector', 'viewer') }, async (request, reply) => {
    const user = request.pageUser!;
    const { tasks, total } = await listCallTasks(services, { status: 'open', limit: 200, offset: 0 });
    const canAct = user.role !== 'viewer';
    // Only an invoice id is echoed back, never free text from the URL.
    const done = externalIdSchema.safeParse((request.query as { done?: unknown }).done);
    const body = html`<h1>Calls to make</h1>
${done.success ? html`<p class="notice" role="status">Outcome recorded on the timeline of invoice ${done.data}.</p>` : ''}
<p class="muted">${total} open, earliest due first. A call whose case closed, or whose debtor disputes or asked not to be contacted, leaves this list by itself.</p>
${
  tasks.length === 0
    ? html`<p>No calls to make.</p>`
    : html`<table><thead><tr><th>Due</th><th>Customer</th><th>Phone</th><th>Balance</th><th>What to say</th><th>Outcome</th></tr></thead><tbody>
${tasks.map(
  (t) => html`<tr data-call-task-id="${t.id}">
  <td>${formatInstant(t.dueAt)}</td>
  <td>${t.customerName}<br><a href="/ui/cases/${encodeURIComponent(t.invoiceExternalId)}">${t.invoiceExternalId}</a> <span class="muted">(${t.daysOverdue} days overdue)</span></td>
  <td>${t.phone ? html`<a href="tel:${t.phone}">${t.phone}</a>` : html`<span class="muted">no number</span>`}</td>
  <td>${formatMoney(t.amountOutstandingMinor, t.currency as Currency)}</td>
  <td>${t.brief}</td>
  <td>${
    canAct
      ? html`<form method="post" action="/ui/call-tasks/${t.id}/outcome" class="actions">
    <input type="hidden" name="csrf" value="${user.csrfToken}">
    <label class="muted" for="outcome-${t.id}">Outcome</label>
    <input id="outcome-${t.id}" name="outcome" type="text" size="28" required minlength="3" maxlength="2000">
    <button type="submit">Record</button>
  </form>`
      : ''
  }</td>
</tr>`,
)}
</tbody></table>`
}`;
    return reply.type('text/html; charset=utf-8').send(layout({ title: 'Calls to make', user, body }));
  });

  app.post('/ui/call-tasks/:id/outcome', { onRequest: requirePageRole(db.db, 'admin', 'collector') }, async (request, reply) => {
    const user = request.pageUser!;
    const fail = (status: number, text: string) =>
      reply
        .code(status)
        .type('text/html; charset=utf-8')
        .send(layout({ title: 'Not recorded', user, body: html`<h1>Not recorded</h1><p class="error" role="alert">${text}</p><p><a href="/ui/calls">Back to the calls</a></p>` }));
    if (!csrfValid(request, (request.body as { csrf?: unknown } | undefined)?.csrf)) return fail(403, 'The form had expired. Nothing was recorded; try again.');
    const id = z.uuid().safeParse((request.params as { id?: unknown }).id);
    if (!id.success) return fail(404, 'There is no such call task.');
    const form = outcomeFormSchema.safeParse(request.body);
    if (!form.success) return fail(400, form.error.issues.map((i) => i.message).join('; '));
    try {
      const task = await recordCallOutcome(services, id.data, form.data.outcome, request.caller!);
      return reply.redirect(`/ui/calls?done=${encodeURIComponent(task.invoiceExternalId)}`, 303);
    } catch (err) {
      if (err instanceof HttpProblem && err.status < 500) return fail(err.status, err.detail);
      throw err;
    }
  });
}
