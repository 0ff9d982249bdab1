// The page: header with the connection state, overview, create form, task detail and list, and
// the notifications, under the REST cache (one QueryClient per page); wires the controller hook to
// the components.

import { QueryClientProvider } from '@tanstack/react-query';
import { useCallback, useMemo, useState } from 'react';
import { createQueryClient } from '../queryClient';
import { isTaskId, visibleTasks } from '../store';
import { useDashboard, type DashboardDeps } from '../useDashboard';
import { useTaskParam } from '../location';
import { ConnectionStatus } from './ConnectionStatus';
import { CreateTaskForm } from './CreateTaskForm';
import { Overview } from './Overview';
import { TaskDetail } from './TaskDetail';
import { TaskList } from './TaskList';
import { TokenPrompt } from './TokenPrompt';
import { Toasts } from './Toasts';

/** `deps` must keep its identity across renders: a new object would reconnect the WebSocket. */
export function App({ deps }: { deps: DashboardDeps }) {
  const [client] = useState(createQueryClient);
  return (
    <QueryClientProvider client={client}>
      <Page deps={deps} />
    </QueryClientProvider>
  );
}

function Page({ deps }: { deps: DashboardDeps }) {
  const [selectedId, select] = useTaskParam();
  const [search, setSearch] = useState('');
  // A whole id that is not loaded is asked of the server: it may be older than the loaded pages.
  const idSearch = isTaskId(search) ? search.trim().toLowerCase() : null;
  const { state, connection, detail, lookup, list, auth, hasToken, actions } = useDashboard(deps, selectedId, idSearch);

  const allTasks = useMemo(() => Object.values(state.tasks), [state.tasks]);
  const rows = useMemo(() => visibleTasks(state, search), [state, search]);
  // Closing the detail hands focus back to the row it was opened from, when that row is shown.
  const close = useCallback(() => {
    const closing = selectedId;
    select(null);
    requestAnimationFrame(() => {
      const row = [...document.querySelectorAll<HTMLElement>('tr[data-task-id]')].find((tr) => tr.dataset.taskId === closing);
      row?.querySelector<HTMLButtonElement>('button')?.focus();
    });
  }, [select, selectedId]);

  return (
    <>
      <a className="skip-link" href="#tasks">
        Skip to the task list
      </a>
      <header className="app-header">
        <h1>TaskFlow</h1>
        <ConnectionStatus state={connection} onReconnect={actions.reconnectNow} />
        {hasToken && (
          <button type="button" className="button button--small" onClick={actions.forgetToken}>
            Forget token
          </button>
        )}
      </header>
      {auth !== 'ok' && <TokenPrompt phase={auth} onSubmit={actions.submitToken} />}
      <main className={selectedId === null ? 'layout' : 'layout layout--detail'}>
        <Overview stats={state.stats} tasks={allTasks} />
        <CreateTaskForm onCreate={actions.createTask} />
        {selectedId !== null ? (
          <TaskDetail
            key={selectedId}
            taskId={selectedId}
            task={state.tasks[selectedId]}
            fetch={detail}
            seen={state.seen[selectedId]}
            onClose={close}
            onRetry={actions.retryTask}
          />
        ) : (
          <section className="panel detail detail--empty" aria-label="Task details">
            <p className="hint">Select a task to see its payload and timeline.</p>
          </section>
        )}
        <TaskList
          rows={rows}
          list={state.list}
          requests={list}
          search={search}
          lookup={lookup}
          selectedId={selectedId}
          onSearch={setSearch}
          onFilter={actions.setStatusFilter}
          onLoadMore={actions.loadMore}
          onReload={actions.reload}
          onSelect={select}
        />
      </main>
      <Toasts toasts={state.toasts} onDismiss={actions.dismissToast} onOpen={select} />
    </>
  );
}
