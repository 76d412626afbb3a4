import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { formatMoney, type Currency } from '../../domain/money';
import type { AppContext } from '../app';
import { getInvoiceDetail } from '../invoice-service';
import { HttpProblem } from '../problem';
import { formatInstant, kindLabel } from './format';
import { html, layout, type PageUser } from './html';
import { requirePageRole } from './session';

/**
 * A form that posts an action with a reason to `url`, with its own key: sent again (a reload
 * after a timeout), it is the same action, applied once.
 */
export function reasonForm(user: PageUser, form: { url: string; id: string; label: string }) {
  return html`<form method="post" action="${form.url}" class="actions">
  <input type="hidden" name="csrf" value="${user.csrfToken}">
  <input type="hidden" name="key" value="${randomUUID()}">
  <label class="muted" for="${form.id}">Reason</label>
  <input id="${form.id}" name="reason" type="text" required minlength="3" maxlength="2000">
  <button type="submit">${form.label}</button>
</form>`;
}

/**
 * An operator's action on a case, with a reason: resume (on a blocked case it retries the step;
 * on a paused one it ends the pause) or restart (a lost or ended workflow starts again, paused).
 */
export function caseActionForm(externalId: string, user: PageUser, action: 'resume' | 'restart', blocked = false) {
  const label = action === 'restart' ? 'Restart, paused' : blocked ? 'Retry the step' : 'Resume';
  return reasonForm(user, { url: `/ui/cases/${encodeURIComponent(externalId)}/${action}`, id: `${action}-${externalId}`, label });
}

/** One case: balance, next step, everything that happened and who did it, and where to look in Temporal. */
export function registerCasePage({ db, services }: AppContext, app: FastifyInstance): void {
  app.get('/ui/cases/:externalId', { onRequest: requirePageRole(db.db, 'admin', 'collector', 'approver', 'viewer') }, async (request, reply) => {
    const { externalId } = request.params as { externalId: string };
    const user = request.pageUser!;
    let detail;
    try {
      detail = await getInvoiceDetail(services, externalId);
    } catch (err) {
      if (err instanceof HttpProblem && err.status === 404) {
        return reply.code(404).type('text/html; charset=utf-8').send(layout({ title: 'Unknown invoice', user, body: html`<h1>Unknown invoice</h1><p>${err.detail}</p>` }));
      }
      throw err;
    }
    const { invoice, live } = detail;
    const caseView = detail.case;
    const currency = invoice.currency as Currency;
    const notStarted = caseView?.stage === 'NotStarted';
    const next = live?.nextAction
      ? `${kindLabel(live.nextAction.kind)} at ${formatInstant(live.nextAction.at)}`
      : notStarted
        ? `The case starts at ${formatInstant(caseView.startsAt)}, ahead of its first step`
        : caseView?.nextActionAt
          ? formatInstant(caseView.nextActionAt)
          : 'Nothing scheduled';
    const canAct = user.role === 'admin' || user.role === 'collector';
    // The database copy when Temporal does not answer.
    const pausedReason = live ? live.pausedReason : caseView?.pausedReason;
    const body = html`<h1>Invoice ${invoice.number} <span class="muted">(${invoice.externalId})</span></h1>
<section class="card" aria-label="Case">
  <dl>
    <dt>Customer</dt><dd>${invoice.customerExternalId}</dd>
    <dt>Balance</dt><dd><strong>${formatMoney(caseView?.amountOutstandingMinor ?? invoice.amountOutstandingMinor, currency)}</strong> of ${formatMoney(invoice.amountTotalMinor, currency)}, due ${invoice.dueDate}</dd>
    <dt>Stage</dt><dd>${live?.stage ?? caseView?.stage ?? 'No case'}${caseView?.outcome ? ` (${caseView.outcome})` : ''}</dd>
    <dt>Next step</dt><dd>${next}</dd>
    ${live?.pendingApproval ? html`<dt>Waiting for</dt><dd>${kindLabel(live.pendingApproval.kind)} approval, <a href="/ui/approvals">in the inbox</a></dd>` : ''}
    ${caseView?.blockedReason ? html`<dt>Blocked</dt><dd>${caseView.blockedReason}</dd>` : ''}
    ${caseView?.workflowGone ? html`<dt>Workflow</dt><dd>Gone (${caseView.workflowGone}): nothing will happen to this case until it is restarted</dd>` : ''}
    ${pausedReason ? html`<dt>Paused</dt><dd>${pausedReason}${caseView?.pausedAfterRestart ? ' (since its restart: the disputes, promises and plans the old run knew of are on the timeline below)' : ''}</dd>` : ''}
    ${live?.dispute ? html`<dt>Dispute</dt><dd>${live.dispute.reason} (since ${formatInstant(live.dispute.openedAt)})</dd>` : ''}
    ${live?.promise ? html`<dt>Promise to pay</dt><dd>${formatMoney(live.promise.amountMinor, currency)} by ${live.promise.promisedDate}</dd>` : ''}
  </dl>
  ${caseView ? html`<p><a href="${caseView.temporalUiUrl}">Open the workflow in the Temporal UI</a></p>` : ''}
  ${
    caseView?.workflowGone && canAct
      ? caseActionForm(invoice.externalId, user, 'restart')
      : caseView && canAct && (caseView.stage === 'Blocked' || caseView.stage === 'Paused')
        ? caseActionForm(invoice.externalId, user, 'resume', caseView.stage === 'Blocked')
        : ''
  }
  ${live || notStarted || !caseView ? '' : html`<p class="muted">Temporal did not answer, so this shows the database copy.</p>`}
</section>
<h2>Communications</h2>
${
  detail.communications.length === 0
    ? html`<p>None yet.</p>`
    : html`<table><thead><tr><th>When</th><th>Channel</th><th>To</th><th>Status</th><th>Content</th></tr></thead><tbody>
${detail.communications.map(
  (c) => html`<tr><td>${formatInstant(c.createdAt)}</td><td>${c.channel}</td><td>${c.recipient ?? '—'}</td><td>${c.status}</td>
<td><details><summary>${c.subject ?? c.template}</summary><pre>${c.body}</pre></details></td></tr>`,
)}
</tbody></table>`
}
${
  detail.queuedCommands.length === 0
    ? ''
    : html`<h2>Waiting to reach the case</h2>
<p class="muted">Stored, and delivered automatically once Temporal answers, in this order; each then appears on the timeline.</p>
<ul>${detail.queuedCommands.map((c) => html`<li>${c.command} by ${c.requestedBy} at ${formatInstant(c.at)}${c.attempts > 0 ? ` (${c.attempts} ${c.attempts === 1 ? 'attempt' : 'attempts'}; last: ${c.lastError ?? 'unknown'})` : ''}</li>`)}</ul>`
}
<h2>Timeline</h2>
<table><thead><tr><th>When</th><th>Who</th><th>What</th><th>Details</th></tr></thead><tbody>
${detail.timeline.map(
  (e) => html`<tr><td>${formatInstant(e.at)}</td><td>${e.actor}</td><td>${e.type}</td><td><code>${JSON.stringify(e.data)}</code></td></tr>`,
)}
</tbody></table>`;
    return reply.type('text/html; charset=utf-8').send(layout({ title: `Invoice ${invoice.number}`, user, body }));
  });
}
