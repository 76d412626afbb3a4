import type { FastifyInstance } from 'fastify';
import { HttpProblem } from './problem';

/**
 * PostgreSQL stores no NUL character (U+0000) in text or jsonb, but JSON may carry one
 * ("\u0000"): such input would pass validation and fail at the database as a 500.
 */
const NUL = '\0';
const nulMessage = 'contains a NUL character (\\u0000), which cannot be stored';

/** Parsed JSON or a query: plain objects and arrays, nothing else is walked (a stream's body is not data). */
function isPlainData(value: unknown): value is Record<string, unknown> | unknown[] {
  if (Array.isArray(value)) return true;
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Where in `value` a NUL character is, as a dotted path from `path`, if anywhere. Walked with a
 * stack of its own, so deeply nested JSON cannot overflow the call stack.
 */
export function findNul(value: unknown, path: string): string | undefined {
  const stack: [unknown, string][] = [[value, path]];
  while (stack.length > 0) {
    const [item, at] = stack.pop()!;
    if (typeof item === 'string') {
      if (item.includes(NUL)) return at;
    } else if (isPlainData(item)) {
      for (const [key, child] of Object.entries(item)) {
        if (key.includes(NUL)) return `${at}.${key}`;
        stack.push([child, `${at}.${key}`]);
      }
    }
  }
  return undefined;
}

/** A JSON escape for NUL that is not itself escaped: an even run of backslashes before it (even none). */
const nulEscape = /(?<!\\)((?:\\\\)*)\\u0000/g;

/** `value` (JSON data) with every NUL character, in strings and keys, replaced by U+FFFD. */
export function replaceNul<T>(value: T): T {
  const text = JSON.stringify(value);
  return text === undefined || !text.includes('\\u0000') ? value : (JSON.parse(text.replace(nulEscape, '$1\\ufffd')) as T);
}

/**
 * Refuses, with a 400 that names the field, a request whose JSON body, query or path holds a
 * NUL character. It runs after the route's own checks (authentication, a webhook's signature),
 * so a caller who may not call the route learns nothing from it. Webhook routes are left
 * out: a signed event is kept whatever it holds, with its NULs replaced (routes/webhooks.ts).
 */
export function rejectNulCharacters(app: FastifyInstance): void {
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.url?.startsWith('/webhooks/')) return;
    const at = findNul(request.body, 'body') ?? findNul(request.query, 'query') ?? findNul(request.params, 'path');
    if (at) throw nulProblem(at);
  });
}

/** The field error for a NUL character at `path` (also a CSV row's, in an import report). */
export const nulFieldError = (path: string) => ({ path, message: nulMessage });

function nulProblem(at: string): HttpProblem {
  return new HttpProblem(400, 'validation', 'The request is invalid', `${at}: ${nulMessage}`, [nulFieldError(at)]);
}
