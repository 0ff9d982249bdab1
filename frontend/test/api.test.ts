// The REST client over a recorded fetch: the bearer token only when configured, the /stats
// decoding, and the error envelope (a retry refused with 409).

import { describe, expect, it } from 'vitest';
import { ApiError, createApiClient } from '../src/api';

interface Recorded {
  url: string;
  headers: Headers;
  method: string;
}

/** A fetch that records each request and answers `body` with `status`. */
function recorder(status: number, body: unknown) {
  const calls: Recorded[] = [];
  const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    calls.push({ url: input, headers: new Headers(init?.headers), method: init?.method ?? 'GET' });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetch };
}

const TASK = {
  task_id: '0190f1e2-7c4b-7d2a-9a5e-1f2e3d4c5b6a',
  title: 't',
  payload: null,
  status: 'PENDING',
  created_at: '2026-11-28T19:00:00Z',
  updated_at: '2026-11-28T19:05:00Z',
  finished_at: null,
  message: null,
};

describe('the API client', () => {
  it('sends no Authorization header without a token', async () => {
    const { calls, fetch } = recorder(200, []);
    await createApiClient('', { fetch }).listTasks({ limit: 5 });
    expect(calls[0]?.url).toBe('/tasks?limit=5');
    expect(calls[0]?.headers.has('authorization')).toBe(false);
    expect(calls[0]?.headers.get('accept')).toBe('application/json');
  });

  it('sends the bearer token on every call when one is set', async () => {
    const { calls, fetch } = recorder(200, TASK);
    const api = createApiClient('http://api:8000/', { token: 'abc', fetch });
    await api.getTask(TASK.task_id);
    await api.createTask({ title: 't', payload: null });
    expect(calls.map((call) => [call.url, call.method, call.headers.get('authorization')])).toEqual([
      [`http://api:8000/tasks/${TASK.task_id}`, 'GET', 'Bearer abc'],
      ['http://api:8000/tasks', 'POST', 'Bearer abc'],
    ]);
    expect(calls[1]?.headers.get('content-type')).toBe('application/json');
  });

  it('asks a token function at every call, so a token typed later applies at once', async () => {
    const { calls, fetch } = recorder(200, []);
    let token: string | null = null;
    const api = createApiClient('', { token: () => token, fetch });
    await api.listTasks({ limit: 1 });
    token = 'typed';
    await api.listTasks({ limit: 1 });
    expect(calls.map((call) => call.headers.get('authorization'))).toEqual([null, 'Bearer typed']);
  });

  it('turns a 401 into an ApiError with status 401', async () => {
    const { fetch } = recorder(401, { error: { code: 'unauthorized', message: 'a valid bearer token is required' } });
    await expect(createApiClient('', { fetch }).listTasks({ limit: 1 })).rejects.toMatchObject({ status: 401 });
  });

  it('reads /stats into counts and per-minute buckets', async () => {
    const { fetch } = recorder(200, {
      counts: { PENDING: 1, PROCESSING: 2, DONE: 30, FAILED: 4 },
      finished_per_minute: [
        { minute: '2026-11-28T19:08:00Z', done: 3, failed: 1 },
        { minute: 'not a time', done: 1, failed: 0 },
      ],
    });
    expect(await createApiClient('', { fetch }).getStats()).toEqual({
      counts: { PENDING: 1, PROCESSING: 2, DONE: 30, FAILED: 4 },
      finishedPerMinute: [{ start: Date.parse('2026-11-28T19:08:00Z'), done: 3, failed: 1 }],
    });
  });

  it('refuses a /stats answer without every count', async () => {
    const { fetch } = recorder(200, { counts: { PENDING: 1 }, finished_per_minute: [] });
    await expect(createApiClient('', { fetch }).getStats()).rejects.toMatchObject({ code: 'bad_response' });
  });

  it('retries with a POST and turns a 409 envelope into an ApiError', async () => {
    const { calls, fetch } = recorder(409, { error: { code: 'conflict', message: 'only FAILED tasks can be retried; this one is DONE' } });
    const error: unknown = await createApiClient('', { fetch }).retryTask(TASK.task_id).catch((caught: unknown) => caught);
    expect(calls[0]).toMatchObject({ url: `/tasks/${TASK.task_id}/retry`, method: 'POST' });
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: 'conflict', message: 'only FAILED tasks can be retried; this one is DONE' });
  });
});
