import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../app';
import { findCallerByKey } from '../auth';
import { html, layout } from './html';
import { csrfValid, endSession, issueLoginToken, loginTokenValid, requirePageRole, startSession } from './session';

/** Only our own pages are followed after sign-in: never an absolute or protocol-relative URL. */
const nextSchema = z.string().regex(/^\/ui\/[^/\\]/).catch('/ui/approvals');

function loginPage(next: string, loginToken: string, error?: string): string {
  return layout({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>
${error ? html`<p class="error" role="alert">${error}</p>` : ''}
<form method="post" action="/ui/login" class="card">
  <input type="hidden" name="next" value="${next}">
  <input type="hidden" name="login" value="${loginToken}">
  <label for="key">Your API key</label>
  <input id="key" name="key" type="password" autocomplete="current-password" required>
  <p class="muted">Ask an admin for one (<code>npm run keys -- create</code>). The key stays on this page; the browser keeps a session cookie for 8 hours.</p>
  <button type="submit">Sign in</button>
</form>`,
  });
}

export function registerLoginPages({ db }: AppContext, app: FastifyInstance): void {
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/approvals', 303));

  app.get('/ui/login', async (request, reply) => {
    const next = nextSchema.parse((request.query as { next?: unknown }).next);
    return reply.type('text/html; charset=utf-8').send(loginPage(next, issueLoginToken(request, reply)));
  });

  app.post('/ui/login', async (request, reply) => {
    const form = request.body as { key?: unknown; next?: unknown; login?: unknown } | undefined;
    const next = nextSchema.parse(form?.next);
    // Another site cannot post this form: it cannot read the cookie the form must repeat.
    if (!loginTokenValid(request, form?.login)) {
      return reply.code(403).type('text/html; charset=utf-8').send(loginPage(next, issueLoginToken(request, reply), 'The sign-in form had expired; try again.'));
    }
    const caller = typeof form?.key === 'string' && form.key.length > 0 ? await findCallerByKey(db.db, form.key.trim()) : undefined;
    if (!caller) {
      return reply.code(401).type('text/html; charset=utf-8').send(loginPage(next, issueLoginToken(request, reply), 'That key is unknown or revoked.'));
    }
    await startSession(db.db, caller, request, reply);
    // Approvers start at their inbox; everyone else at the operations view.
    const home = caller.role === 'approver' ? '/ui/approvals' : '/ui/operations';
    return reply.redirect(form?.next ? next : home, 303);
  });

  app.post('/ui/logout', { onRequest: requirePageRole(db.db, 'admin', 'collector', 'approver', 'viewer') }, async (request, reply) => {
    if (csrfValid(request, (request.body as { csrf?: unknown } | undefined)?.csrf)) await endSession(db.db, request, reply);
    return reply.redirect('/ui/login', 303);
  });
}
