// The live connection to `/ws`: decodes messages, reports its state, and reconnects with capped,
// jittered exponential backoff. The WebSocket class is injected so tests can drive a fake one.

import type { StatusEvent } from './types';
import { decodeServerMessage } from './wire';

/** The part of the browser's WebSocket this module uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  close(code?: number, reason?: string): void;
}
const CONNECTING = 0; // WebSocket.CONNECTING, which a fake class need not define

export type WebSocketFactory = new (url: string, protocols?: string[]) => WebSocketLike;

export type ConnectionState =
  | { phase: 'connecting'; attempt: number }
  | { phase: 'open' }
  | { phase: 'waiting'; attempt: number; retryAt: number; closeCode: number | null }
  | { phase: 'stopped' };

export interface Backoff {
  initialMs: number;
  maxMs: number;
}
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 10_000 };

export interface ConnectionOptions {
  url: string;
  /**
   * The subprotocols of each attempt, asked anew every time so reconnects carry the current
   * token (see token.ts); none by default.
   */
  protocols?: () => string[];
  WebSocketImpl?: WebSocketFactory;
  backoff?: Backoff;
  /** Jitter source in [0, 1); tests pass a constant. */
  random?: () => number;
  onEvent(event: StatusEvent): void;
  /** The server says events may have been lost: reload what is shown. */
  onResync(reason: string): void;
  /**
   * Every successful open, the first included: events sent while no socket was open are lost, so
   * the caller reloads from REST (after a reconnect, and also the first time, because the first
   * list may have been read before the socket was subscribed).
   */
  onOpen(info: { reconnected: boolean }): void;
  onStateChange(state: ConnectionState): void;
}

export interface Connection {
  /** Skip the wait and try again now (a "Reconnect now" button). */
  reconnectNow(): void;
  /** Close for good: no more callbacks, no more attempts. */
  stop(): void;
}

/**
 * The wait before reconnect attempt `attempt` (1, 2, …): doubling from `initialMs`, capped at
 * `maxMs`, with "equal jitter" (between half and all of it) so that many dashboards dropped by
 * one server restart do not all come back in the same millisecond.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function connect(options: ConnectionOptions): Connection {
  const WebSocketImpl = options.WebSocketImpl ?? WebSocket;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const random = options.random ?? Math.random;
  let socket: WebSocketLike | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  // Failed attempts since the last successful open; drives the backoff.
  let failures = 0;
  let everOpened = false;
  let stopped = false;

  const setState = (state: ConnectionState): void => {
    if (!stopped) options.onStateChange(state);
  };

  const open = (): void => {
    timer = null;
    setState({ phase: 'connecting', attempt: failures + 1 });
    let current: WebSocketLike;
    try {
      const protocols = options.protocols?.() ?? [];
      // No second argument without protocols: some WebSocket implementations treat [] oddly.
      current = protocols.length > 0 ? new WebSocketImpl(options.url, protocols) : new WebSocketImpl(options.url);
    } catch (error) {
      // A malformed URL throws synchronously; keep retrying like any failure so the indicator
      // shows the problem instead of the module dying silently.
      console.error('cannot open the WebSocket', error);
      scheduleRetry(null);
      return;
    }
    socket = current;
    current.onopen = () => {
      if (socket !== current || stopped) return;
      // Reset on open: a server that accepts and then drops us at once still gets the initial
      // delay between tries, which is gentle enough at 0.5 s.
      failures = 0;
      const reconnected = everOpened;
      everOpened = true;
      setState({ phase: 'open' });
      options.onOpen({ reconnected });
    };
    current.onmessage = (message) => {
      if (socket !== current || stopped || typeof message.data !== 'string') return;
      const decoded = decodeServerMessage(message.data);
      if (decoded === null) {
        console.warn('ignoring an unknown WebSocket message', message.data);
      } else if (decoded.kind === 'resync') {
        options.onResync(decoded.reason);
      } else {
        options.onEvent(decoded.event);
      }
    };
    // An error is always followed by a close, which is where the retry is decided.
    current.onerror = () => undefined;
    current.onclose = (event) => {
      if (socket !== current || stopped) return;
      socket = null;
      // 1001 (server shutting down) is retried like any loss: the server is usually restarting.
      scheduleRetry(event.code);
    };
  };

  const scheduleRetry = (closeCode: number | null): void => {
    failures += 1;
    const delay = backoffDelay(failures, backoff, random);
    setState({ phase: 'waiting', attempt: failures + 1, retryAt: Date.now() + delay, closeCode });
    timer = setTimeout(open, delay);
  };

  const detach = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const current = socket;
    socket = null;
    if (current === null) return;
    current.onmessage = current.onerror = current.onclose = null;
    if (current.readyState === CONNECTING) {
      // Closing a socket that is still connecting makes browsers log a warning, and React's
      // StrictMode does just that in development: close it as soon as it opens instead.
      current.onopen = () => current.close(1000, 'closed by the dashboard');
    } else {
      current.onopen = null;
      current.close(1000, 'closed by the dashboard');
    }
  };

  open();
  return {
    reconnectNow() {
      if (stopped || socket !== null) return;
      detach();
      open();
    },
    stop() {
      detach();
      setState({ phase: 'stopped' });
      stopped = true;
    },
  };
}
