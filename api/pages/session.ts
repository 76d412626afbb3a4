import { randomBytes } from 'node:crypto';
import { and, eq, gt, isNull } from 'drizzle-orm';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '../../db/client';
import { apiKeys, sessions } from '../../db/schema';
import { hashApiKey, sameSecret, type Caller, type Role } from '../auth';
import { html, layout, type PageUser } from './html';

const cookieName = 'arrears_session';
/** A working day: long enough for an approver's inbox, short enough for a shared desk. */
const sessionHours = 8;

declare module 'fastify' {
  interface FastifyRequest {
    pageUser?: PageUser & { sessionId: string };
  }
}

const loginCookieName = 'arrears_login';

function cookieValue(request: FastifyRequest, wanted = cookieName): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === wanted) return value.join('=');
  }
  return undefined;
}

function setCookie(reply: FastifyReply, request: FastifyRequest, value: string, maxAgeSeconds: number, name = cookieName): void {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  void reply.header('set-cookie', `${name}=${value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`);
}

/**
 * The sign-in form's CSRF guard (there is no session yet): a random value in a cookie that the
 * form repeats. A page elsewhere can make the browser post, but cannot read the value.
 */
export function issueLoginToken(request: FastifyRequest, reply: FastifyReply): string {
  const token = randomBytes(24).toString('base64url');
  setCookie(reply, request, token, 3600, loginCookieName);
  return token;
}

export function loginTokenValid(request: FastifyRequest, submitted: unknown): boolean {
  return sameSecret(submitted, cookieValue(request, loginCookieName));
}

/** Exchanges a live API key's holder for a session cookie (the key itself is never stored in the browser). */
export async function startSession(db: Database, caller: Caller, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const token = randomBytes(32).toString('base64url');
  await db.insert(sessions).values({
    tokenHash: hashApiKey(token),
    apiKeyId: caller.keyId,
    csrfToken: randomBytes(24).toString('base64url'),
    expiresAt: new Date(Date.now() + sessionHours * 3_600_000),
  });
  setCookie(reply, request, token, sessionHours * 3600);
}

export async function endSession(db: Database, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.pageUser) await db.delete(sessions).where(eq(sessions.id, request.pageUser.sessionId));
  setCookie(reply, request, '', 0);
}

async function readSession(db: Database, request: FastifyRequest) {
  const token = cookieValue(request);
  if (!token) return undefined;
  const [row] = await db
    .select({ sessionId: sessions.id, csrfToken: sessions.csrfToken, keyId: apiKeys.id, name: apiKeys.name, role: apiKeys.role })
    .from(sessions)
    .innerJoin(apiKeys, eq(apiKeys.id, sessions.apiKeyId))
    // A revoked key ends its sessions at once.
    .where(and(eq(sessions.tokenHash, hashApiKey(token)), gt(sessions.expiresAt, new Date()), isNull(apiKeys.revokedAt)));
  return row;
}

/**
 * onRequest hook for pages: a signed-in user of one of `allowed` roles, else the sign-in page
 * (remembering where they were going) or a 403 page. The caller is recorded as for the API.
 */
export function requirePageRole(db: Database, ...allowed: Role[]): onRequestHookHandler {
  return async (request, reply) => {
    const session = await readSession(db, request);
    if (!session) {
      const next = request.method === 'GET' ? `?next=${encodeURIComponent(request.url)}` : '';
      return reply.redirect(`/ui/login${next}`, 303);
    }
    request.caller = { keyId: session.keyId, name: session.name, role: session.role };
    request.pageUser = { name: session.name, role: session.role, csrfToken: session.csrfToken, sessionId: session.sessionId };
    if (!allowed.includes(session.role)) {
      return reply
        .code(403)
        .type('text/html; charset=utf-8')
        .send(layout({ title: 'Not allowed', user: request.pageUser, body: html`<h1>Not allowed</h1><p>The ${session.role} role cannot open this page.</p>` }));
    }
  };
}

/** Every form carries the session's CSRF token; a POST without the right one changes nothing. */
export function csrfValid(request: FastifyRequest, submitted: unknown): boolean {
  return sameSecret(submitted, request.pageUser?.csrfToken);
}

/** HTML forms post application/x-www-form-urlencoded: parsed here into a plain object of strings. */
export function acceptForms(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
}
