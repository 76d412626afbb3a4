import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isDatabaseUnavailable } from '../db/client';

/** One thing wrong with a field; `path` names it (dotted for JSON, the column for CSV). */
export const fieldErrorSchema = z.object({ path: z.string(), message: z.string() });
export type FieldError = z.infer<typeof fieldErrorSchema>;

/**
 * Every error leaves the API as RFC 9457 problem+json with a stable `type`. Clients branch on
 * `type`; people read `detail`. 5xx details stay in the log, never in the response.
 */
const problemSchema = z.object({
  type: z.string().describe('Stable identifier of the kind of problem, e.g. urn:arrears:problem:validation'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
  requestId: z.string().optional(),
  errors: z.array(fieldErrorSchema).optional(),
});
export type Problem = z.infer<typeof problemSchema>;

const problemType = (slug: string) => `urn:arrears:problem:${slug}`;

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    readonly detail: string,
    readonly errors?: Problem['errors'],
    /** What went wrong underneath, for the log and for callers that retry (never shown to the client). */
    cause?: unknown,
  ) {
    super(detail, cause === undefined ? undefined : { cause });
    this.name = 'HttpProblem';
  }
}

/** A 400 for input that fails a zod schema outside Fastify's own validation (e.g. a signed webhook's body). */
export function invalidInput(where: string, error: z.ZodError): HttpProblem {
  const errors = error.issues.map((issue) => ({ path: [where, ...issue.path.map(String)].join('.'), message: issue.message }));
  return new HttpProblem(400, 'validation', 'The request is invalid', errors.map((e) => `${e.path}: ${e.message}`).join('; '), errors);
}

/** A problem response for a route's schema: documented as application/problem+json, as it is sent. */
export const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: problemSchema } } });

/** The problems a route may answer, each described for the OpenAPI document. */
export const problemResponses = {
  400: problemResponse('The request is malformed: the problem says which field is wrong and why'),
  401: problemResponse('No API key, or one that is unknown or revoked'),
  403: problemResponse("The key's role may not do this"),
  404: problemResponse('No such invoice, case or record'),
  409: problemResponse('It conflicts with what is stored (a closed case, an id used with other details)'),
  413: problemResponse('The body is too large'),
  422: problemResponse('Well-formed but not acceptable (an amount above the balance, another currency)'),
  429: problemResponse('Too many requests from this address: retry after the Retry-After header'),
  503: problemResponse('The database or Temporal did not answer: send it again (it is applied once)'),
};

function send(reply: FastifyReply, request: FastifyRequest, problem: Omit<Problem, 'instance' | 'requestId'>) {
  return reply
    .code(problem.status)
    .type('application/problem+json')
    .send(JSON.stringify({ ...problem, instance: request.url, requestId: request.id }));
}

/** Fastify's own client errors, by code, as stable problem types. */
const fastifyErrorSlugs: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad-request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed-json',
};

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) =>
    send(reply, request, {
      type: problemType('not-found'),
      title: 'Not found',
      status: 404,
      detail: `No route ${request.method} ${request.url.split('?')[0]}.`,
    }),
  );

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof HttpProblem) {
      return send(reply, request, {
        type: problemType(error.slug),
        title: error.title,
        status: error.status,
        detail: error.detail,
        ...(error.errors ? { errors: error.errors } : {}),
      });
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = error.validationContext ?? 'request';
      const errors = error.validation.map((issue) => ({
        path: [where, ...(issue.instancePath ? issue.instancePath.split('/').filter(Boolean) : [])].join('.'),
        message: issue.message ?? 'is invalid',
      }));
      return send(reply, request, {
        type: problemType('validation'),
        title: 'The request is invalid',
        status: 400,
        detail: errors.map((e) => `${e.path}: ${e.message}`).join('; '),
        errors,
      });
    }
    if (isDatabaseUnavailable(error)) {
      request.log.error({ err: error }, 'database unavailable');
      // Nothing was stored: the caller must retry, and webhook senders do so on any 5xx.
      void reply.header('retry-after', '5');
      return send(reply, request, {
        type: problemType('database-unavailable'),
        title: 'Database unavailable',
        status: 503,
        detail: 'The database did not answer, so nothing was stored. Retry shortly.',
      });
    }
    if (isResponseSerializationError(error)) {
      request.log.error({ err: error, issues: error.cause.issues }, 'response did not match its schema');
    } else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own client errors: malformed JSON, body too large, unsupported media type, ...
      return send(reply, request, {
        type: problemType(fastifyErrorSlugs[error.code] ?? 'bad-request'),
        title: 'The request could not be processed',
        status: error.statusCode,
        detail: error.message,
      });
    } else {
      request.log.error({ err: error }, 'unhandled error');
    }
    return send(reply, request, {
      type: problemType('internal'),
      title: 'Internal error',
      status: 500,
      detail: `Something went wrong on our side. Quote request id ${request.id} when reporting it.`,
    });
  });
}
