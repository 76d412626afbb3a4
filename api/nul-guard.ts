import type { FastifyInstance } from 'fastify';
import { HttpProblem } from './problem';

/**
 * Where in `value` a NUL character (U+0000) is, as a dotted path, if anywhere. JSON may carry
 * one ("\u0000"), but PostgreSQL stores none in text or jsonb: such input would fail at the
 * database, after validation, as a 500.
 */
export function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\0') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    const at = `${path}.${key}`;
    if (key.includes('\0')) return at;
    const found = findNul(item, at);
    if (found) return found;
  }
  return undefined;
}

/** Refuses, with a 400 that names the field, any request whose body, query or path holds a NUL character. */
export function rejectNulCharacters(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const at = findNul(request.body, 'body') ?? findNul(request.query, 'query') ?? findNul(request.params, 'path');
    if (at) {
      throw new HttpProblem(400, 'validation', 'The request is invalid', `${at}: contains a NUL character (\\u0000), which cannot be stored`, [
        { path: at, message: 'contains a NUL character (\\u0000), which cannot be stored' },
      ]);
    }
  });
}
