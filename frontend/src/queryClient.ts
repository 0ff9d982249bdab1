// The REST cache: TanStack Query's client with the dashboard's rules for retrying reads, and the
// query keys. Every answer also goes into the store (see useDashboard.ts), which merges it with
// the live events; the cache decides when to ask, dedupes and retries.

import { QueryClient } from '@tanstack/react-query';
import type { ApiError } from './api';

declare module '@tanstack/react-query' {
  interface Register {
    defaultError: ApiError;
  }
}

export const keys = {
  list: (status: string | null) => ['tasks', status] as const,
  task: (taskId: string) => ['task', taskId] as const,
  stats: ['stats'] as const,
};

/** Only an outage is worth asking again: a 4xx (a 401 above all) answers the same next time. */
export function retryRead(failures: number, error: ApiError): boolean {
  return failures < 2 && (error.status === 0 || error.status >= 500);
}

export function createQueryClient(): QueryClient {
  return new QueryClient({
    // `always`: the API may be on this machine while the browser believes it is offline, and an
    // unreachable API is reported by the call itself rather than by a request that never starts.
    defaultOptions: {
      // The WebSocket's open (and resync notices) decide when everything is read again.
      queries: { retry: retryRead, networkMode: 'always', refetchOnWindowFocus: false, refetchOnReconnect: false },
      // Creating and retrying are not idempotent.
      mutations: { retry: false, networkMode: 'always' },
    },
  });
}
