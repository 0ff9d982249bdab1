// The create form: title, message and an optional JSON payload, checked before sending, with each
// error (ours or the server's) shown under the field it concerns.

import { useRef, useState, type FormEvent } from 'react';
import { errorsFromServer, validateTaskForm, type FormErrors, type FormField, type TaskFormValues } from '../taskForm';
import type { NewTask, Task } from '../types';

const EMPTY: TaskFormValues = { title: '', message: '', payload: '' };
const FIELDS: FormField[] = ['title', 'message', 'payload'];

/** `aria-describedby` from the ids that exist. */
function describedBy(...ids: (string | false)[]): string | undefined {
  const present = ids.filter((id): id is string => id !== false);
  return present.length > 0 ? present.join(' ') : undefined;
}

export function CreateTaskForm({ onCreate }: { onCreate(task: NewTask): Promise<Task> }) {
  const [values, setValues] = useState<TaskFormValues>(EMPTY);
  const [errors, setErrors] = useState<FormErrors>({});
  const [submitting, setSubmitting] = useState(false);
  const [created, setCreated] = useState<Task | null>(null);
  const fields = {
    title: useRef<HTMLInputElement>(null),
    message: useRef<HTMLInputElement>(null),
    payload: useRef<HTMLTextAreaElement>(null),
  };

  // Keyboard and screen reader users land on the first thing to fix.
  const focusFirstError = (found: FormErrors): void => {
    const field = FIELDS.find((name) => found[name] !== undefined);
    if (field !== undefined) fields[field].current?.focus();
  };

  const change = (field: FormField) => (event: { target: { value: string } }) => {
    const { value } = event.target;
    setValues((current) => ({ ...current, [field]: value }));
    // An error goes away once its field is edited; the form's own stays until the next submit.
    setErrors(({ [field]: _fixed, ...rest }) => rest);
  };

  const submit = async (event: FormEvent<HTMLFormElement>): Promise<void> => {
    event.preventDefault();
    if (submitting) return;
    const result = validateTaskForm(values);
    if (!result.ok) {
      setErrors(result.errors);
      focusFirstError(result.errors);
      return;
    }
    setErrors({});
    setCreated(null);
    setSubmitting(true);
    try {
      setCreated(await onCreate(result.task));
      setValues(EMPTY);
    } catch (error) {
      const found = errorsFromServer(error);
      setErrors(found);
      focusFirstError(found);
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <section className="panel create" aria-labelledby="create-heading">
      <h2 id="create-heading">New task</h2>
      <form onSubmit={(event) => void submit(event)} noValidate>
        <div className="field">
          <label htmlFor="task-title">Title</label>
          <input
            id="task-title"
            ref={fields.title}
            name="title"
            value={values.title}
            onChange={change('title')}
            required
            aria-required="true"
            aria-invalid={errors.title !== undefined}
            aria-describedby={describedBy(errors.title !== undefined && 'task-title-error')}
            autoComplete="off"
          />
          {errors.title !== undefined && (
            <p id="task-title-error" className="field__error">
              {errors.title}
            </p>
          )}
        </div>

        <div className="field">
          <label htmlFor="task-message">
            Message <span className="optional">(optional)</span>
          </label>
          <input
            id="task-message"
            ref={fields.message}
            name="message"
            value={values.message}
            onChange={change('message')}
            aria-describedby="task-message-hint"
            autoComplete="off"
          />
          <p id="task-message-hint" className="field__hint">
            The worker finishes a task with a message as DONE, one without as FAILED.
          </p>
        </div>

        <div className="field">
          <label htmlFor="task-payload">
            Payload <span className="optional">(optional JSON object)</span>
          </label>
          <textarea
            id="task-payload"
            ref={fields.payload}
            name="payload"
            value={values.payload}
            onChange={change('payload')}
            rows={3}
            spellCheck={false}
            placeholder='{"priority": 1}'
            aria-invalid={errors.payload !== undefined}
            aria-describedby={describedBy('task-payload-hint', errors.payload !== undefined && 'task-payload-error')}
          />
          <p id="task-payload-hint" className="field__hint">
            The message above is added to it as <code>"message"</code>.
          </p>
          {errors.payload !== undefined && (
            <p id="task-payload-error" className="field__error">
              {errors.payload}
            </p>
          )}
        </div>

        {errors.form !== undefined && (
          <p className="form__error" role="alert">
            {errors.form}
          </p>
        )}
        <div className="form__footer">
          <button type="submit" className="button button--primary" disabled={submitting}>
            {submitting ? 'Creating…' : 'Create task'}
          </button>
          <p role="status" className="form__status">
            {created !== null && `Created “${created.title}”.`}
          </p>
        </div>
      </form>
    </section>
  );
}
