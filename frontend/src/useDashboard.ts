// The dashboard's controller: owns the store, keeps it in step with the REST API, `/stats` and the
// live connection (reloading whenever events may have been missed), notices when the API wants a
// token (a 401 from any call), and offers the actions the components call.

import { isCancelledError, useIsMutating, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from 'react';
import { ApiError, errorMessage, type ApiClient, type TaskPage } from './api';
import { connect, type Backoff, type Connection, type ConnectionState, type WebSocketFactory } from './connection';
import { keys } from './queryClient';
import { initialState, reducer, type DashboardState } from './store';
import { createTokenStore, wsProtocols, type TokenStore } from './token';
import { isTerminal, type NewTask, type Task, type TaskStatus } from './types';

export interface DashboardDeps {
  api: ApiClient;
  wsUrl: string;
  WebSocketImpl?: WebSocketFactory;
  backoff?: Backoff;
  random?: () => number;
  /** How often the counters are re-read from `GET /stats`. */
  statsIntervalMs?: number;
  /**
   * Where the token typed into the page is kept; `api` must send what it holds. Without one, a
   * store in memory (the token is still sent on /ws, but `api` cannot see it).
   */
  tokens?: TokenStore;
}

/**
 * Whether the page needs a token from the person: `needed` after a 401 to a call sent without
 * one, `refused` after a 401 to a call sent with the current one, `checking` from a submit until
 * a call with it succeeds.
 */
export type AuthPhase = 'ok' | 'needed' | 'refused' | 'checking';

export const PAGE_SIZE = 50;
export const STATS_INTERVAL_MS = 10_000;
const CREATE = ['create'];
const MAX_PAGE = 500;
/** Tasks outside the reloaded window that a resync refreshes by id, at most. */
const MAX_STALE_REFRESH = 50;

/** The state of the last fetch of one task by id (detail view, id search, unknown events). */
export interface TaskFetch {
  loading: boolean;
  error: ApiError | null;
}

export interface DashboardActions {
  setStatusFilter(status: TaskStatus | null): void;
  loadMore(): void;
  reload(): void;
  createTask(task: NewTask): Promise<Task>;
  retryTask(taskId: string): Promise<Task>;
  dismissToast(id: number): void;
  reconnectNow(): void;
  /** Keeps the token, reloads everything with it and reconnects the WebSocket with it. */
  submitToken(token: string): void;
  /** Drops the token from the store (sessionStorage) and carries on without it. */
  forgetToken(): void;
}

export interface Dashboard {
  state: DashboardState;
  connection: ConnectionState;
  /** The open task's fetch, and the id search's (a whole id not loaded is asked of the server). */
  detail: TaskFetch;
  lookup: TaskFetch;
  /** The list's requests in flight and why the last one failed. */
  list: { loading: 'replace' | 'append' | null; error: string | null };
  auth: AuthPhase;
  hasToken: boolean;
  actions: DashboardActions;
}

export function useDashboard(deps: DashboardDeps, selectedId: string | null, lookupId: string | null): Dashboard {
  const { api: rawApi, wsUrl, WebSocketImpl, backoff, random, statsIntervalMs = STATS_INTERVAL_MS, tokens: givenTokens } = deps;
  const tokens = useMemo(() => givenTokens ?? createTokenStore(null), [givenTokens]);
  // Mirrors the store so a new token re-renders and reconnects the WebSocket.
  const [token, setToken] = useState<string | null>(() => tokens.get());
  const [auth, setAuth] = useState<AuthPhase>('ok');
  const api = useMemo(() => watchAuth(rawApi, tokens, setAuth), [rawApi, tokens]);
  const [state, dispatch] = useReducer(reducer, undefined, initialState);
  const [connection, setConnection] = useState<ConnectionState>({ phase: 'connecting', attempt: 1 });
  const client = useQueryClient();

  // Async callbacks read the latest state and selection through refs rather than closures, so a
  // reload started by a WebSocket callback sees the filter and window of the current render.
  const stateRef = useRef(state);
  const selectedRef = useRef(selectedId);
  useLayoutEffect(() => {
    stateRef.current = state;
    selectedRef.current = selectedId;
  });
  const connectionRef = useRef<Connection | null>(null);

  // One task by id (detail view, id search, unknown events). Every answer goes into the store,
  // where the merge rule drops one that is older than what the page holds.
  const taskQuery = useCallback(
    (taskId: string) => ({
      queryKey: keys.task(taskId),
      // The store keeps the task; the cache only shares a request in flight.
      gcTime: 0,
      queryFn: async () => {
        const task = await api.getTask(taskId);
        dispatch({ type: 'taskLoaded', task });
        return task;
      },
    }),
    [api],
  );
  const fetchTask = useCallback(
    (taskId: string) =>
      void client.fetchQuery(taskQuery(taskId)).catch((error: unknown) => {
        // An event for a task we cannot read would wait forever: let it go.
        if (!isCancelledError(error)) dispatch({ type: 'orphanDropped', taskId });
      }),
    [client, taskQuery],
  );
  const detail = useQuery({ ...taskQuery(selectedId ?? ''), enabled: selectedId !== null });
  const lookup = useQuery({ ...taskQuery(lookupId ?? ''), enabled: lookupId !== null && state.tasks[lookupId] === undefined });

  // The loaded window, read again whole (one request of its size) on a reload. A newer request
  // cancels the one in flight, whose answer is then ignored: it would bring back rows that no
  // longer belong. "Load more" appends to it below.
  const status = state.list.status;
  const list = useQuery({
    queryKey: keys.list(status),
    queryFn: async ({ signal }) => {
      const limit = Math.min(MAX_PAGE, Math.max(PAGE_SIZE, stateRef.current.list.ids.length));
      dispatch({ type: 'listRequested', mode: 'replace' });
      const page = await api.listTasks({ status, limit, before: null });
      if (!signal.aborted) dispatch({ type: 'listLoaded', mode: 'replace', tasks: page.tasks, cursor: page.nextCursor });
      return page;
    },
  });
  const more = useMutation({
    mutationFn: (cursor: string) => api.listTasks({ status, limit: PAGE_SIZE, before: cursor }),
    onSuccess(page, cursor) {
      // A reload or a new filter since then has its own window, which this page does not continue.
      const { list: now } = stateRef.current;
      if (now.status !== status || now.cursor !== cursor || client.isFetching({ queryKey: keys.list(status) }) > 0) return;
      dispatch({ type: 'listLoaded', mode: 'append', tasks: page.tasks, cursor: page.nextCursor });
    },
  });

  // The counters' snapshot: at start, every interval while the tab is visible (and at once when it
  // is shown again), and on each reload. An API without /stats (404) is not polled; it is asked
  // again only on a reload, in case it was upgraded.
  useQuery({
    queryKey: keys.stats,
    queryFn: async ({ signal }) => {
      // The snapshot includes every change before this moment; later ones are added from events.
      const ref = Date.now() * 1000;
      dispatch({ type: 'statsRequested', at: ref });
      try {
        const stats = await api.getStats();
        if (!signal.aborted) dispatch({ type: 'statsLoaded', stats, ref });
        return stats;
      } catch (error) {
        if (!signal.aborted) dispatch({ type: 'statsFailed', message: errorMessage(error) });
        throw error;
      }
    },
    retry: false, // the next poll is the retry
    refetchInterval: (query) => (query.state.error?.status === 404 ? false : statsIntervalMs),
    refetchOnWindowFocus: (query) => query.state.error?.status !== 404,
  });

  /**
   * Reloads everything shown after events may have been lost (a reconnect, a resync notice): the
   * counters, the loaded window, the open task, and tasks outside the window that were still
   * moving (finished ones cannot change unless retried).
   */
  const resync = useCallback(async (): Promise<void> => {
    const before = stateRef.current;
    const selected = selectedRef.current;
    void client.invalidateQueries({ queryKey: keys.stats });
    if (selected !== null) void client.invalidateQueries({ queryKey: keys.task(selected) });
    await client.invalidateQueries({ queryKey: keys.list(before.list.status) });
    const page = client.getQueryData<TaskPage>(keys.list(before.list.status));
    const fresh = new Set(page?.tasks.map((task) => task.task_id));
    Object.values(before.tasks)
      .filter((task) => !isTerminal(task.status) && !fresh.has(task.task_id) && task.task_id !== selected)
      .slice(0, MAX_STALE_REFRESH)
      .forEach((task) => fetchTask(task.task_id));
  }, [client, fetchTask]);

  useEffect(() => {
    const live = connect({
      url: wsUrl,
      // The store is read on every attempt, so each reconnect carries the token.
      protocols: () => wsProtocols(tokens.get()),
      ...(WebSocketImpl && { WebSocketImpl }),
      ...(backoff && { backoff }),
      ...(random && { random }),
      onEvent(event) {
        dispatch({ type: 'event', event });
        // The open task's attempts and timestamps come only with a snapshot.
        if (event.task_id === selectedRef.current) void client.invalidateQueries({ queryKey: keys.task(event.task_id) });
      },
      onResync() {
        void resync();
      },
      onOpen() {
        void resync();
      },
      onStateChange(next) {
        setConnection(next);
        // A browser hides the status of a refused handshake: after two failed attempts in a
        // row, a cheap read tells a 401 (which opens the prompt) from an outage.
        if (next.phase === 'waiting' && next.attempt === 3) void api.getStats().catch(() => undefined);
      },
    });
    connectionRef.current = live;
    return () => live.stop();
    // `token` restarts the connection: a socket opened without it (or with an old one) is useless.
  }, [wsUrl, WebSocketImpl, backoff, random, client, resync, api, tokens, token]);

  // Events for tasks we have no snapshot of (someone else created them): fetch them by id. The
  // PENDING event of a task created here usually arrives before the POST's answer, which brings
  // the same snapshot: while a create is unanswered, wait for it rather than fetch twice. Any
  // other task's event waits that long too (milliseconds), then is fetched.
  const creating = useIsMutating({ mutationKey: CREATE });
  useEffect(() => {
    if (creating > 0) return;
    for (const taskId of Object.keys(state.orphans)) fetchTask(taskId);
  }, [state.orphans, creating, fetchTask]);

  const { mutateAsync: createTask } = useMutation({
    mutationKey: CREATE,
    mutationFn: (task: NewTask) => api.createTask(task),
    onSuccess: (task) => dispatch({ type: 'taskLoaded', task }),
  });
  const { mutateAsync: retryTask } = useMutation({
    mutationFn: (taskId: string) => api.retryTask(taskId),
    onSuccess: (task) => dispatch({ type: 'taskLoaded', task }),
  });
  const { mutate: loadMore } = more;
  const listBusy = list.isFetching || more.isPending;

  const actions = useMemo<DashboardActions>(
    () => ({
      setStatusFilter(next) {
        dispatch({ type: 'filterChanged', status: next });
      },
      loadMore() {
        const { cursor } = stateRef.current.list;
        if (cursor !== null && !listBusy) loadMore(cursor);
      },
      reload() {
        void resync();
      },
      createTask,
      retryTask,
      dismissToast(id) {
        dispatch({ type: 'toastDismissed', id });
      },
      reconnectNow() {
        connectionRef.current?.reconnectNow();
      },
      submitToken(value) {
        const trimmed = value.trim();
        if (trimmed === '') return;
        tokens.set(trimmed);
        setToken(trimmed);
        setAuth('checking');
        // The socket reconnects through the effect above; REST is reloaded here, because a
        // refused socket cannot say why and the reload's 401 is what reports a wrong token.
        void resync();
      },
      forgetToken() {
        tokens.clear();
        setToken(null);
        setAuth('ok');
        void resync();
      },
    }),
    [createTask, retryTask, loadMore, listBusy, resync, tokens],
  );

  // A failed "Load more" counts until the window is read again.
  const listError = list.isFetching ? null : (list.error ?? (more.submittedAt > list.dataUpdatedAt ? more.error : null));
  return {
    state,
    connection,
    detail: { loading: detail.isFetching, error: detail.error },
    lookup: { loading: lookup.isFetching, error: lookup.error },
    list: { loading: list.isFetching ? 'replace' : more.isPending ? 'append' : null, error: listError?.message ?? null },
    auth,
    hasToken: token !== null,
    actions,
  };
}

/**
 * `api` with every call watched for 401: the answer to a call sent with the token the store
 * holds now decides the phase; an answer to a call sent with an older token says nothing about
 * the current one and is ignored.
 */
function watchAuth(api: ApiClient, tokens: TokenStore, setAuth: (update: (phase: AuthPhase) => AuthPhase) => void): ApiClient {
  const watch =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const sent = tokens.get();
      try {
        const result = await call(...args);
        if (tokens.get() === sent) setAuth((phase) => (phase === 'checking' ? 'ok' : phase));
        return result;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401 && tokens.get() === sent) {
          setAuth(() => (sent === null ? 'needed' : 'refused'));
        }
        throw error;
      }
    };
  return {
    listTasks: watch((query: Parameters<ApiClient['listTasks']>[0]) => api.listTasks(query)),
    getTask: watch((taskId: string) => api.getTask(taskId)),
    createTask: watch((task: Parameters<ApiClient['createTask']>[0]) => api.createTask(task)),
    retryTask: watch((taskId: string) => api.retryTask(taskId)),
    getStats: watch(() => api.getStats()),
  };
}
