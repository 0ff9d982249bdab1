// The live connection's state for people: a polite live region that speaks only when the phase
// changes, and a countdown to the next attempt that is shown but not read out every second.

import type { ConnectionState } from '../connection';
import { useNow } from '../useNow';

function describe(state: ConnectionState): string {
  switch (state.phase) {
    case 'open':
      return 'Live';
    case 'connecting':
      return state.attempt > 1 ? 'Reconnecting…' : 'Connecting…';
    case 'waiting':
      return 'Offline, reconnecting';
    case 'stopped':
      return 'Disconnected';
  }
}

export function ConnectionStatus({ state, onReconnect }: { state: ConnectionState; onReconnect(): void }) {
  const now = useNow(1000, state.phase === 'waiting');
  const seconds = state.phase === 'waiting' ? Math.max(0, Math.ceil((state.retryAt - now) / 1000)) : 0;
  return (
    <div className={`connection connection--${state.phase}`} data-phase={state.phase}>
      <span className="connection__dot" aria-hidden="true" />
      <span role="status" aria-live="polite">
        {describe(state)}
      </span>
      {state.phase === 'waiting' && (
        <>
          <span className="connection__countdown" aria-hidden="true">
            in {seconds} s
          </span>
          <button type="button" className="button button--small" onClick={onReconnect}>
            Reconnect now
          </button>
        </>
      )}
    </div>
  );
}
