/**
 * Request helpers of the REST API: the error that becomes an HTTP status, task ids derived from
 * names, and the plan-fit check. Request shapes are validated by the routes' schemas
 * (schemas.ts) before a handler runs.
 */
import { TASK_ID_PATTERN } from './schemas.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A task id (lower-case letters, digits and dashes), as the TaskCreate schema has it. */
export const TASK_ID = new RegExp(TASK_ID_PATTERN);

/** "Plan X trains N labels" when the plan trains another number of labels than `labels`. */
export function planMisfit(
  name: string,
  plan: { classes?: number },
  labels: number,
): string | undefined {
  if (plan.classes === undefined || plan.classes === labels + 1) return undefined;
  return `Plan ${name} trains ${plan.classes - 1} labels`;
}

export function slug(name: string): string {
  return name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}
