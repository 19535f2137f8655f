/**
 * @module Route bodies validated by zod, the same library that validates the config.
 * Routes declare `schema: { body: zodSchema }`; a failure is a 400 `ERR_VALIDATION` naming the field.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodType } from 'zod';
import { ValidationError } from '../errors.js';

/**
 * Lets routes declare zod schemas; a body, query or params that fails answers 400 `ERR_VALIDATION`
 * naming the field (with `registerErrorReplies`, in the error shape).
 * @example
 * registerZodValidation(app);
 * app.put('/name', { schema: { body: z.strictObject({ name: z.string().min(1).max(64) }) } }, handler);
 */
export function registerZodValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const zodSchema = schema as ZodType;
    return (data: unknown) => {
      const result = zodSchema.safeParse(data);
      if (result.success) return { value: result.data };
      const issue = result.error.issues[0]!;
      const field = issue.path.length === 0 ? (httpPart ?? 'body') : issue.path.join('.');
      return { error: new ValidationError(`${field}: ${issue.message}`) };
    };
  });
}
