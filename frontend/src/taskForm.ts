// The create form's rules, kept apart from React: what is checked before sending, how the message
// joins the payload, and which field a server error belongs to.

import { ApiError } from './api';
import type { JsonObject, NewTask } from './types';
import { isJsonObject } from './wire';

export interface TaskFormValues {
  title: string;
  message: string;
  /** JSON text; blank means no payload beyond the message. */
  payload: string;
}

export type FormField = 'title' | 'message' | 'payload';
export type FormErrors = Partial<Record<FormField | 'form', string>>;

export const MAX_TITLE_CHARS = 255;

export type Validated = { ok: true; task: NewTask } | { ok: false; errors: FormErrors };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** Checks the form as the server would, so most mistakes are caught before a round trip. */
export function validateTaskForm(values: TaskFormValues): Validated {
  const errors: FormErrors = {};
  // The server counts characters (Unicode scalar values), not UTF-16 units: spread, not .length.
  const titleChars = [...values.title].length;
  if (values.title.trim() === '') {
    errors.title = 'Enter a title.';
  } else if (titleChars > MAX_TITLE_CHARS) {
    errors.title = `The title is ${titleChars} characters long; at most ${MAX_TITLE_CHARS} are allowed.`;
  }

  let payload: JsonObject | null = null;
  if (values.payload.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(values.payload);
    } catch (error) {
      errors.payload = `The payload is not valid JSON: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (errors.payload === undefined) {
      if (isJsonObject(parsed)) payload = parsed;
      else errors.payload = `The payload must be a JSON object like {"key": "value"}, not ${describe(parsed)}.`;
    }
  }

  if (Object.keys(errors).length > 0) return { ok: false, errors };
  // The message field wins over a "message" key typed in the payload: it is the more explicit.
  if (values.message !== '') payload = { ...payload, message: values.message };
  return { ok: true, task: { title: values.title, payload } };
}

/** Places a failed creation next to the field it concerns, or at the form when none is named. */
export function errorsFromServer(error: unknown): FormErrors {
  if (error instanceof ApiError) {
    if (error.field === 'title' || error.field === 'payload') return { [error.field]: error.message };
    return { form: error.message };
  }
  return { form: error instanceof Error ? error.message : String(error) };
}
