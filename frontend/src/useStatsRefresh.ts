// Keeps the counters' snapshot fresh: `GET /stats` at start, every 10 s while the page is visible,
// and whenever the caller asks (after a reconnect or a resync). One request at a time.

import { useCallback, useEffect, useRef, type Dispatch } from 'react';
import { ApiError, errorMessage, type ApiClient } from './api';
import type { Action } from './store';

export const STATS_INTERVAL_MS = 10_000;

/** Returns `refresh()`, which asks for a new snapshot now (or right after the one in flight). */
export function useStatsRefresh(api: ApiClient, dispatch: Dispatch<Action>, intervalMs = STATS_INTERVAL_MS): () => void {
  const inFlight = useRef(false);
  const again = useRef(false);
  // An API without /stats answers 404: stop asking, the page falls back to its own counts.
  const unsupported = useRef(false);

  const refresh = useCallback((): void => {
    if (inFlight.current) {
      // The answer in flight may predate what prompted this call (events lost in a gap).
      again.current = true;
      return;
    }
    inFlight.current = true;
    // The snapshot includes every change before this moment; later ones are added from events.
    const ref = Date.now() * 1000;
    dispatch({ type: 'statsRequested', at: ref });
    api
      .getStats()
      .then(
        (stats) => {
          unsupported.current = false; // an upgraded API, asked again after a reconnect
          dispatch({ type: 'statsLoaded', stats, ref });
        },
        (error: unknown) => {
          unsupported.current = error instanceof ApiError && error.status === 404;
          dispatch({ type: 'statsFailed', message: errorMessage(error) });
        },
      )
      .finally(() => {
        inFlight.current = false;
        if (again.current) {
          again.current = false;
          refresh();
        }
      });
  }, [api, dispatch]);

  useEffect(() => {
    refresh();
    const due = (): boolean => !unsupported.current && document.visibilityState !== 'hidden';
    // A hidden tab needs no fresh numbers; it catches up the moment it is shown again.
    const timer = setInterval(() => due() && refresh(), intervalMs);
    const onVisibility = (): void => {
      if (due()) refresh();
    };
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [refresh, intervalMs]);

  return refresh;
}
