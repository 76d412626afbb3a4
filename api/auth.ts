import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '../db/client';
import type { roles } from '../db/schema';
import { apiKeys } from '../db/schema';
import { HttpProblem } from './problem';

export type Role = (typeof roles)[number];
export type Caller = { keyId: string; name: string; role: Role };

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** Compares a submitted secret with the expected one in constant time (no timing hint of how much matched). */
export function sameSecret(submitted: unknown, expected: string | undefined): boolean {
  if (typeof submitted !== 'string' || !expected) return false;
  const left = Buffer.from(submitted);
  const right = Buffer.from(expected);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Creates a key for a person or service; the plain key is returned once and never stored. */
export async function createApiKey(db: Database, input: { name: string; role: Role }): Promise<{ id: string; key: string }> {
  const key = `arr_${randomBytes(32).toString('base64url')}`;
  const [row] = await db
    .insert(apiKeys)
    .values({ name: input.name, role: input.role, keyHash: hashApiKey(key) })
    .returning({ id: apiKeys.id });
  return { id: row!.id, key };
}

export async function listApiKeys(db: Database) {
  return db
    .select({ id: apiKeys.id, name: apiKeys.name, role: apiKeys.role, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .orderBy(asc(apiKeys.createdAt));
}

/** Revokes a live key; undefined if there is none with that id (or it is revoked already). */
export async function revokeApiKey(db: Database, id: string) {
  const [row] = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id, name: apiKeys.name, role: apiKeys.role });
  return row;
}

/** Who holds this key, if it is a live one. */
export async function findCallerByKey(db: Database, key: string): Promise<Caller | undefined> {
  const [row] = await db
    .select({ keyId: apiKeys.id, name: apiKeys.name, role: apiKeys.role })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hashApiKey(key)), isNull(apiKeys.revokedAt)));
  return row;
}

/**
 * An onRequest hook (before the body is read or validated) that lets the request through only with a live API key of one of `allowed`
 * roles (`Authorization: Bearer <key>`), and records who the caller is on the request.
 */
export function requireRole(db: Database, ...allowed: Role[]): onRequestHookHandler {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const header = request.headers.authorization;
    const match = header?.match(/^Bearer\s+(\S+)$/i);
    if (!match) {
      throw new HttpProblem(401, 'unauthenticated', 'Authentication required', 'Send an API key as "Authorization: Bearer <key>".');
    }
    const key = await findCallerByKey(db, match[1]!);
    if (!key) throw new HttpProblem(401, 'unauthenticated', 'Authentication required', 'The API key is unknown or revoked.');
    if (!allowed.includes(key.role)) {
      throw new HttpProblem(403, 'forbidden', 'Not allowed', `The ${key.role} role may not do this; it needs one of: ${allowed.join(', ')}.`);
    }
    request.caller = key;
  };
}
