// The REST client: typed calls for /tasks and /stats, the optional bearer token (read at each
// call, so a token typed into the page applies at once), and the API's error envelope turned
// into ApiError.

import type { NewTask, ServerStats, Task, TaskStatus } from './types';
import { decodeStats, decodeTask, isRecord } from './wire';

/** A failed call: the envelope's code, message and field, or a network or protocol failure. */
export class ApiError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  readonly code: string;
  /** The request field the error concerns (`title`, `payload`…), when the server names one. */
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface ListQuery {
  limit: number;
  status?: TaskStatus | null;
  before?: string | null;
}

export interface TaskPage {
  tasks: Task[];
  /** The `before` of the next page, from the `x-next-cursor` header; null on the last page. */
  nextCursor: string | null;
}

export interface ApiClient {
  listTasks(query: ListQuery): Promise<TaskPage>;
  getTask(taskId: string): Promise<Task>;
  createTask(task: NewTask): Promise<Task>;
  retryTask(taskId: string): Promise<Task>;
  getStats(): Promise<ServerStats>;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /**
   * Sent as `Authorization: Bearer <token>` on every call when set (API_TOKEN on the server); a
   * function is asked at each call (the token store).
   */
  token?: string | null | (() => string | null);
  fetch?: Fetch;
}

/** What one call sends: plain-object headers, so the token can be merged into them. */
interface Call {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

export function createApiClient(baseUrl: string, options: ClientOptions = {}): ApiClient {
  // Called through a wrapper: window.fetch throws "Illegal invocation" when called as a method
  // of another object.
  const doFetch: Fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const base = baseUrl.replace(/\/+$/, '');
  const given = options.token;
  const tokenOf = typeof given === 'function' ? given : () => given ?? null;

  async function request(path: string, init: Call = {}): Promise<{ body: unknown; response: Response }> {
    let response: Response;
    try {
      const token = tokenOf();
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const headers = { accept: 'application/json', ...auth, ...init.headers };
      response = await doFetch(`${base}${path}`, { ...init, headers });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ApiError(0, 'network_error', `Cannot reach the API (${reason}).`);
    }
    const text = await response.text();
    let body: unknown = null;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = null; // a proxy's HTML error page: reported below by status
      }
    }
    if (!response.ok) throw errorFrom(response, body);
    return { body, response };
  }

  async function requestTask(path: string, init?: Call): Promise<Task> {
    const { body } = await request(path, init);
    const task = decodeTask(body);
    if (task === null) throw new ApiError(0, 'bad_response', 'The API answered with something that is not a task.');
    return task;
  }

  return {
    async listTasks({ limit, status, before }) {
      const params = new URLSearchParams({ limit: String(limit) });
      if (status) params.set('status', status);
      if (before) params.set('before', before);
      const { body, response } = await request(`/tasks?${params.toString()}`);
      if (!Array.isArray(body)) throw new ApiError(0, 'bad_response', 'The API answered with something that is not a list.');
      const tasks = body.map(decodeTask).filter((task): task is Task => task !== null);
      return { tasks, nextCursor: response.headers.get('x-next-cursor') };
    },
    getTask(taskId) {
      return requestTask(`/tasks/${encodeURIComponent(taskId)}`);
    },
    createTask(task) {
      return requestTask('/tasks', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(task),
      });
    },
    retryTask(taskId) {
      return requestTask(`/tasks/${encodeURIComponent(taskId)}/retry`, { method: 'POST' });
    },
    async getStats() {
      const { body } = await request('/stats');
      const stats = decodeStats(body);
      if (stats === null) throw new ApiError(0, 'bad_response', 'The API answered /stats with something unexpected.');
      return stats;
    },
  };
}

function errorFrom(response: Response, body: unknown): ApiError {
  const envelope = isRecord(body) && isRecord(body.error) ? body.error : null;
  if (envelope !== null && typeof envelope.message === 'string') {
    return new ApiError(
      response.status,
      typeof envelope.code === 'string' ? envelope.code : 'error',
      envelope.message,
      typeof envelope.field === 'string' ? envelope.field : null,
    );
  }
  return new ApiError(response.status, 'http_error', `The API answered ${response.status} ${response.statusText}`.trim() + '.');
}

/** A message fit to show for any error thrown by the client. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
