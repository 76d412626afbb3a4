import type { FastifyRequest } from 'fastify';

/**
 * The client's `Idempotency-Key` header, when it sent a usable one (1 to 200 characters): the
 * id under which a retried request is recognised and changes nothing.
 */
export function idempotencyKey(request: FastifyRequest): string | undefined {
  const key = request.headers['idempotency-key'];
  return typeof key === 'string' && key.length > 0 && key.length <= 200 ? key : undefined;
}
