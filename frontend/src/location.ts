// Deep links: the open task lives in the URL as `?task=<id>`, so a link or a reload reopens it and
// Back closes it. No router library: one query parameter does not need one.

import { useCallback, useEffect, useState } from 'react';

const PARAM = 'task';

function readTaskParam(): string | null {
  const value = new URLSearchParams(window.location.search).get(PARAM);
  return value === null || value.trim() === '' ? null : value.trim();
}

/** The task id in the URL, and a setter that pushes a history entry (null removes it). */
export function useTaskParam(): [string | null, (taskId: string | null) => void] {
  const [taskId, setTaskId] = useState<string | null>(readTaskParam);

  useEffect(() => {
    const onPopState = (): void => setTaskId(readTaskParam());
    window.addEventListener('popstate', onPopState);
    return () => window.removeEventListener('popstate', onPopState);
  }, []);

  const select = useCallback((next: string | null) => {
    const url = new URL(window.location.href);
    if (next === null) url.searchParams.delete(PARAM);
    else url.searchParams.set(PARAM, next);
    if (url.href !== window.location.href) window.history.pushState(null, '', url);
    setTaskId(next);
  }, []);

  return [taskId, select];
}
