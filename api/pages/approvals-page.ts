import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { daysOverdue } from '../../domain/collection';
import { formatMoney, type Currency } from '../../domain/money';
import { contactsSoFar, decideApproval, getApproval, listApprovals, type ApprovalView } from '../approval-service';
import type { AppContext } from '../app';
import { HttpProblem } from '../problem';
import { formatInstant, kindLabel } from './format';
import { html, layout, type Html } from './html';
import { csrfValid, requirePageRole } from './session';

const decisionForm = z.object({
  csrf: z.string(),
  decision: z.enum(['approve', 'reject']),
  reason: z.string().trim().min(3, 'Give a reason of at least 3 characters').max(2000),
});

function costLine(approval: ApprovalView): string {
  const currency = approval.currency as Currency;
  if (approval.costMinor === 0) return 'No cost recorded';
  // Whole per cent of the amount, from integers: display only.
  const percent = approval.amountMinor > 0 ? Math.round((approval.costMinor * 100) / approval.amountMinor) : 0;
  const what = approval.kind === 'agency_referral' ? 'Agency commission' : approval.kind === 'legal_action' ? 'Expected legal costs' : approval.kind === 'settlement' ? 'Waived' : 'Cost';
  return `${what} ${formatMoney(approval.costMinor, currency)} against ${formatMoney(approval.amountMinor, currency)} (${percent} %)`;
}

/** The approver's inbox: pending requests, largest and oldest first, each with the facts to decide on. */
export function registerApprovalPages({ db, services }: AppContext, app: FastifyInstance): void {
  async function renderInbox(request: FastifyRequest, reply: FastifyReply, banner?: { kind: 'notice' | 'error'; text: string; status?: number }) {
    const pending = await listApprovals(services, { status: 'pending', limit: 200 });
    const contacts = await contactsSoFar(services, pending.map((a) => a.workflowId));
    const now = new Date();
    const user = request.pageUser!;
    const items = pending.map((approval) => {
      const tried = contacts.get(approval.workflowId) ?? [];
      const currency = approval.currency as Currency;
      const headingId = `approval-${approval.id}`;
      return html`<section class="card" aria-labelledby="${headingId}" data-approval-id="${approval.id}">
  <h2 id="${headingId}">${kindLabel(approval.kind)}: ${approval.customer.name}, invoice ${approval.invoice.number}</h2>
  <dl>
    <dt>Amount outstanding</dt><dd>${formatMoney(approval.amountOutstandingMinor, currency)}</dd>
    <dt>Days overdue</dt><dd>${daysOverdue(approval.invoice.dueDate, now)} (due ${approval.invoice.dueDate})</dd>
    <dt>Why</dt><dd>${approval.reason}</dd>
    <dt>Cost</dt><dd>${costLine(approval)}</dd>
    <dt>Tried so far</dt><dd>${
      tried.length === 0
        ? 'No contact yet'
        : html`<ul>${tried.map((c) => html`<li>${formatInstant(c.at)}: ${c.channel} ${c.template} (${c.status})</li>`)}</ul>`
    }</dd>
    <dt>Requested</dt><dd>${formatInstant(new Date(approval.createdAt))} by ${approval.requestedBy}; decide by ${formatInstant(new Date(approval.deadlineAt))}</dd>
  </dl>
  <p><a href="/ui/cases/${encodeURIComponent(approval.invoice.externalId)}">The whole case</a></p>
  ${
    approval.requestedBy === user.name
      ? html`<p class="muted">You made this request, so someone else must decide it.</p>`
      : html`<form method="post" action="/ui/approvals/${approval.id}/decision">
    <input type="hidden" name="csrf" value="${user.csrfToken}">
    <label for="reason-${approval.id}">Reason for your decision</label>
    <textarea id="reason-${approval.id}" name="reason" rows="2" required minlength="3" maxlength="2000"></textarea>
    <div class="actions">
      <button class="approve" type="submit" name="decision" value="approve">Approve</button>
      <button class="reject" type="submit" name="decision" value="reject">Reject</button>
    </div>
  </form>`
  }
</section>`;
    });
    const body: Html = html`<h1>Approvals waiting for you</h1>
${banner ? html`<p class="${banner.kind}" role="${banner.kind === 'error' ? 'alert' : 'status'}">${banner.text}</p>` : ''}
${items.length === 0 ? html`<p>Nothing is waiting for a decision.</p>` : items}`;
    return reply
      .code(banner?.status ?? 200)
      .type('text/html; charset=utf-8')
      .send(layout({ title: 'Approvals', user, body }));
  }

  app.get('/ui/approvals', { onRequest: requirePageRole(db.db, 'admin', 'approver') }, async (request, reply) => {
    const done = z.object({ decided: z.uuid().optional() }).safeParse(request.query);
    if (done.success && done.data.decided) {
      const decided = await getApproval(services, done.data.decided).catch(() => undefined);
      if (decided && decided.status !== 'pending') {
        const verb = decided.status === 'approved' ? 'Approved' : 'Rejected';
        return renderInbox(request, reply, { kind: 'notice', text: `${verb}: ${kindLabel(decided.kind)} for ${decided.customer.name}, invoice ${decided.invoice.number}. The case moves on.` });
      }
    }
    return renderInbox(request, reply);
  });

  // Works without JavaScript: a plain form post, then a redirect to the inbox that names the result.
  app.post('/ui/approvals/:id/decision', { onRequest: requirePageRole(db.db, 'admin', 'approver') }, async (request, reply) => {
    const id = z.uuid().safeParse((request.params as { id: string }).id);
    if (!id.success) return renderInbox(request, reply, { kind: 'error', text: 'No such approval request.', status: 404 });
    const form = decisionForm.safeParse(request.body);
    if (!csrfValid(request, (request.body as { csrf?: unknown } | undefined)?.csrf)) {
      return renderInbox(request, reply, { kind: 'error', text: 'The form had expired. Nothing was decided; try again.', status: 403 });
    }
    if (!form.success) return renderInbox(request, reply, { kind: 'error', text: form.error.issues.map((i) => i.message).join('; '), status: 400 });
    try {
      await decideApproval(services, id.data, form.data, request.caller!);
    } catch (err) {
      if (err instanceof HttpProblem && err.status < 500) {
        return renderInbox(request, reply, { kind: 'error', text: `Your decision was not recorded: ${err.detail}`, status: err.status });
      }
      throw err;
    }
    return reply.redirect(`/ui/approvals?decided=${encodeURIComponent(id.data)}`, 303);
  });
}
