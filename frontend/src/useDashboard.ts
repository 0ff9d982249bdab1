// The dashboard's controller: owns the store, keeps it in step with the REST API, `/stats` and the
// live connection (reloading whenever events may have been missed), notices when the API wants a
// token (a 401 from any call), and offers the actions the components call.

import { useCallback, useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from 'react';
import { ApiError, errorMessage, type ApiClient, type TaskPage } from './api';
import { connect, type Backoff, type Connection, type ConnectionState, type WebSocketFactory } from './connection';
import { initialState, reducer, type DashboardState } from './store';
import { createTokenStore, wsProtocols, type TokenStore } from './token';
import { isTerminal, type NewTask, type Task, type TaskStatus } from './types';
import { useStatsRefresh } from './useStatsRefresh';

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
  /** Fetches a task by id unless it is loaded already (the id search). */
  lookup(taskId: string): void;
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
  fetches: Record<string, TaskFetch>;
  auth: AuthPhase;
  hasToken: boolean;
  actions: DashboardActions;
}

type ListMode = 'replace' | 'append';
interface ListRequest {
  status: TaskStatus | null;
  limit: number;
  before: string | null;
}

export function useDashboard(deps: DashboardDeps, selectedId: string | null): Dashboard {
  const { api: rawApi, wsUrl, WebSocketImpl, backoff, random, statsIntervalMs, tokens: givenTokens } = deps;
  const tokens = useMemo(() => givenTokens ?? createTokenStore(null), [givenTokens]);
  // Mirrors the store so a new token re-renders and reconnects the WebSocket.
  const [token, setToken] = useState<string | null>(() => tokens.get());
  const [auth, setAuth] = useState<AuthPhase>('ok');
  const api = useMemo(() => watchAuth(rawApi, tokens, setAuth), [rawApi, tokens]);
  const [state, dispatch] = useReducer(reducer, undefined, initialState);
  const [connection, setConnection] = useState<ConnectionState>({ phase: 'connecting', attempt: 1 });
  const [fetches, setFetches] = useState<Record<string, TaskFetch>>({});
  // POST /tasks calls not answered yet; see the orphan effect below.
  const [creating, setCreating] = useState(0);
  const refreshStats = useStatsRefresh(api, dispatch, statsIntervalMs);

  // Async callbacks read the latest state and selection through refs rather than closures, so a
  // reload started by a WebSocket callback sees the filter and window of the current render.
  const stateRef = useRef(state);
  const selectedRef = useRef(selectedId);
  useLayoutEffect(() => {
    stateRef.current = state;
    selectedRef.current = selectedId;
  });

  const connectionRef = useRef<Connection | null>(null);
  const inFlight = useRef(new Set<string>());
  const fetchAgain = useRef(new Set<string>());
  // Only the newest list request may land: an older answer (a filter since changed, a reload
  // since superseded) would bring back rows that no longer belong.
  const listSeq = useRef(0);

  const fetchTask = useCallback(
    async (taskId: string, refresh = false): Promise<void> => {
      if (inFlight.current.has(taskId)) {
        // The answer in flight may predate what prompted this call: ask again when it lands.
        if (refresh) fetchAgain.current.add(taskId);
        return;
      }
      inFlight.current.add(taskId);
      setFetches((all) => ({ ...all, [taskId]: { loading: true, error: all[taskId]?.error ?? null } }));
      try {
        const task = await api.getTask(taskId);
        dispatch({ type: 'taskLoaded', task });
        setFetches((all) => ({ ...all, [taskId]: { loading: false, error: null } }));
      } catch (caught) {
        const error = caught instanceof ApiError ? caught : new ApiError(0, 'error', errorMessage(caught));
        // An event for a task we cannot read would wait forever: let it go.
        dispatch({ type: 'orphanDropped', taskId });
        setFetches((all) => ({ ...all, [taskId]: { loading: false, error } }));
      } finally {
        inFlight.current.delete(taskId);
        if (fetchAgain.current.delete(taskId)) void fetchTask(taskId);
      }
    },
    [api],
  );

  const loadList = useCallback(
    async (mode: ListMode, request: ListRequest): Promise<TaskPage | null> => {
      const seq = ++listSeq.current;
      dispatch({ type: 'listRequested', mode });
      try {
        const page = await api.listTasks(request);
        if (seq !== listSeq.current) return null;
        dispatch({ type: 'listLoaded', mode, tasks: page.tasks, cursor: page.nextCursor });
        return page;
      } catch (error) {
        if (seq === listSeq.current) dispatch({ type: 'listFailed', message: errorMessage(error) });
        return null;
      }
    },
    [api],
  );

  /**
   * Reloads everything shown after events may have been lost (a reconnect, a resync notice): the
   * counters, the loaded window in one request of the same size, the open task, and tasks
   * outside the window that were still moving (finished ones cannot change unless retried).
   */
  const resync = useCallback(async (): Promise<void> => {
    refreshStats();
    const before = stateRef.current;
    const limit = Math.min(MAX_PAGE, Math.max(PAGE_SIZE, before.list.ids.length));
    const selected = selectedRef.current;
    if (selected !== null) void fetchTask(selected, true);
    const page = await loadList('replace', { status: before.list.status, limit, before: null });
    if (page === null) return;
    const fresh = new Set(page.tasks.map((task) => task.task_id));
    Object.values(before.tasks)
      .filter((task) => !isTerminal(task.status) && !fresh.has(task.task_id) && task.task_id !== selected)
      .slice(0, MAX_STALE_REFRESH)
      .forEach((task) => void fetchTask(task.task_id));
  }, [fetchTask, loadList, refreshStats]);

  // The first page, at once; the socket's first open reloads it (see onOpen).
  useEffect(() => {
    void loadList('replace', { status: null, limit: PAGE_SIZE, before: null });
  }, [loadList]);

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
        if (event.task_id === selectedRef.current) void fetchTask(event.task_id, true);
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
  }, [wsUrl, WebSocketImpl, backoff, random, fetchTask, resync, api, tokens, token]);

  // Events for tasks we have no snapshot of (someone else created them): fetch them by id. The
  // PENDING event of a task created here usually arrives before the POST's answer, which brings
  // the same snapshot: while a create is unanswered, wait for it rather than fetch twice. Any
  // other task's event waits that long too (milliseconds), then is fetched.
  useEffect(() => {
    if (creating > 0) return;
    for (const taskId of Object.keys(state.orphans)) void fetchTask(taskId);
  }, [state.orphans, creating, fetchTask]);

  // Opening a task (or following a link to one) always reads it fresh, attempts included.
  useEffect(() => {
    if (selectedId !== null) void fetchTask(selectedId, true);
  }, [selectedId, fetchTask]);

  const actions = useMemo<DashboardActions>(
    () => ({
      setStatusFilter(status) {
        dispatch({ type: 'filterChanged', status });
        void loadList('replace', { status, limit: PAGE_SIZE, before: null });
      },
      loadMore() {
        const { list } = stateRef.current;
        if (list.cursor === null || list.loading !== null) return;
        void loadList('append', { status: list.status, limit: PAGE_SIZE, before: list.cursor });
      },
      reload() {
        void resync();
      },
      lookup(taskId) {
        if (stateRef.current.tasks[taskId] === undefined) void fetchTask(taskId);
      },
      async createTask(task) {
        setCreating((n) => n + 1);
        try {
          const created = await api.createTask(task);
          dispatch({ type: 'taskLoaded', task: created });
          return created;
        } finally {
          setCreating((n) => n - 1);
        }
      },
      async retryTask(taskId) {
        const retried = await api.retryTask(taskId);
        dispatch({ type: 'taskLoaded', task: retried });
        return retried;
      },
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
    [api, fetchTask, loadList, resync, tokens],
  );

  return { state, connection, fetches, auth, hasToken: token !== null, actions };
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
