// The create form: checks before sending (blank title, invalid or non-object JSON), the message
// merged into the payload, and server errors shown next to the field they name.

import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../src/api';
import { CreateTaskForm } from '../src/components/CreateTaskForm';
import { validateTaskForm } from '../src/taskForm';
import type { NewTask, Task } from '../src/types';
import { makeTask } from './fakes';

function setup(onCreate: (task: NewTask) => Promise<Task> = async (task) => makeTask({ title: task.title })) {
  const spy = vi.fn(onCreate);
  render(<CreateTaskForm onCreate={spy} />);
  return {
    onCreate: spy,
    user: userEvent.setup(),
    title: screen.getByLabelText('Title'),
    message: screen.getByLabelText(/^Message/),
    payload: screen.getByLabelText(/^Payload/),
    submit: screen.getByRole('button', { name: 'Create task' }),
  };
}

describe('validateTaskForm', () => {
  it('merges the message into the payload, the message field winning', () => {
    expect(validateTaskForm({ title: 't', message: 'hi', payload: '{"message": "old", "n": 1}' })).toEqual({
      ok: true,
      task: { title: 't', payload: { message: 'hi', n: 1 } },
    });
    expect(validateTaskForm({ title: 't', message: '', payload: ' ' })).toEqual({ ok: true, task: { title: 't', payload: null } });
  });

  it('counts title characters as the server does', () => {
    expect(validateTaskForm({ title: '🦀'.repeat(255), message: '', payload: '' }).ok).toBe(true);
    expect(validateTaskForm({ title: 'a'.repeat(256), message: '', payload: '' }).ok).toBe(false);
  });
});

describe('CreateTaskForm', () => {
  it('refuses a blank title and focuses it', async () => {
    const { user, title, submit, onCreate } = setup();
    await user.type(title, '   ');
    await user.click(submit);
    expect(title).toHaveProperty('ariaInvalid', 'true');
    expect(title.getAttribute('aria-describedby')).toBe('task-title-error');
    expect(document.getElementById('task-title-error')?.textContent).toBe('Enter a title.');
    expect(document.activeElement).toBe(title);
    expect(onCreate).not.toHaveBeenCalled();
  });

  it('refuses invalid JSON in the payload', async () => {
    const { user, title, payload, submit, onCreate } = setup();
    await user.type(title, 'Report');
    await user.type(payload, '{{"a": 1');
    await user.click(submit);
    expect(document.getElementById('task-payload-error')?.textContent).toMatch(/^The payload is not valid JSON/);
    expect(payload.getAttribute('aria-describedby')).toContain('task-payload-error');
    expect(document.activeElement).toBe(payload);
    expect(onCreate).not.toHaveBeenCalled();
  });

  it.each([
    ['[1, 2]', 'an array'],
    ['42', 'a number'],
    ['"text"', 'a string'],
    ['null', 'null'],
  ])('refuses the JSON %s, which is not an object', async (json, kind) => {
    const { user, title, payload, submit, onCreate } = setup();
    await user.type(title, 'Report');
    await user.click(payload);
    await user.paste(json);
    await user.click(submit);
    expect(document.getElementById('task-payload-error')?.textContent).toBe(
      `The payload must be a JSON object like {"key": "value"}, not ${kind}.`,
    );
    expect(onCreate).not.toHaveBeenCalled();
  });

  it('sends the title and the message merged into the payload, then clears the form', async () => {
    const { user, title, message, payload, submit, onCreate } = setup();
    await user.type(title, 'Report');
    await user.type(message, 'hello');
    await user.click(payload);
    await user.paste('{"priority": 2}');
    await user.click(submit);
    expect(onCreate).toHaveBeenCalledExactlyOnceWith({ title: 'Report', payload: { priority: 2, message: 'hello' } });
    expect(await screen.findByText('Created “Report”.')).toBeTruthy();
    expect(title).toHaveProperty('value', '');
  });

  it('shows a 422 from the server next to the field it names', async () => {
    const { user, title, payload, submit } = setup(async () => {
      throw new ApiError(422, 'validation_failed', 'payload must be a JSON object or null (got array)', 'payload');
    });
    await user.type(title, 'Report');
    await user.click(submit);
    expect(document.getElementById('task-payload-error')?.textContent).toBe('payload must be a JSON object or null (got array)');
    expect(document.activeElement).toBe(payload);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows a 422 about the title under the title', async () => {
    const { user, title, submit } = setup(async () => {
      throw new ApiError(422, 'validation_failed', 'title must not be empty', 'title');
    });
    await user.type(title, 'x');
    await user.click(submit);
    expect(document.getElementById('task-title-error')?.textContent).toBe('title must not be empty');
  });

  it('shows an error without a field at the form, and keeps what was typed', async () => {
    const { user, title, submit } = setup(async () => {
      throw new ApiError(0, 'network_error', 'Cannot reach the API (Failed to fetch).');
    });
    await user.type(title, 'Report');
    await user.click(submit);
    expect(screen.getByRole('alert').textContent).toBe('Cannot reach the API (Failed to fetch).');
    expect(title).toHaveProperty('value', 'Report');
  });
});
