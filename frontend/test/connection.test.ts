// The live connection, driven through a fake WebSocket: message decoding, capped exponential
// backoff, reporting reopens (so the app reloads), and stopping.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, connect, DEFAULT_BACKOFF, type ConnectionOptions, type ConnectionState } from '../src/connection';
import { FakeWebSocket } from './fakes';

function start(overrides: Partial<ConnectionOptions> = {}) {
  const calls = {
    events: vi.fn(),
    resyncs: vi.fn(),
    opens: vi.fn(),
    states: [] as ConnectionState[],
  };
  const connection = connect({
    url: 'ws://example.test/ws',
    WebSocketImpl: FakeWebSocket,
    random: () => 1, // no jitter: the delays below are exact
    onEvent: calls.events,
    onResync: calls.resyncs,
    onOpen: calls.opens,
    onStateChange: (state) => calls.states.push(state),
    ...overrides,
  });
  return { connection, calls };
}

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, DEFAULT_BACKOFF, () => 1));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it('jitters between half and all of the delay', () => {
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0)).toBe(1000);
    expect(backoffDelay(20, DEFAULT_BACKOFF, () => 0.5)).toBe(7500);
  });
});

describe('connect', () => {
  it('delivers status events and resync notices, and ignores anything else', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const { calls } = start();
    const socket = FakeWebSocket.latest();
    socket.open();
    socket.send({ task_id: 't1', status: 'DONE', updated_at: '2026-11-28T18:40:37.130860Z', message: 'hi' });
    socket.send({ event: 'resync', reason: 'client fell behind by 3 events' });
    socket.send('not json');
    socket.send({ task_id: 't1', status: 'EXPLODED', updated_at: 'x' });
    expect(calls.events).toHaveBeenCalledExactlyOnceWith({
      task_id: 't1',
      status: 'DONE',
      updated_at: '2026-11-28T18:40:37.130860Z',
      message: 'hi',
    });
    expect(calls.resyncs).toHaveBeenCalledExactlyOnceWith('client fell behind by 3 events');
    expect(warn).toHaveBeenCalledTimes(2);
    warn.mockRestore();
  });

  it('reconnects with exponential backoff capped at 10 s, and reports each reopen', () => {
    const { calls } = start();
    FakeWebSocket.latest().open();
    expect(calls.opens).toHaveBeenLastCalledWith({ reconnected: false });

    // The server goes away and stays away: 0.5, 1, 2, 4, 8, 10, 10 s between attempts.
    FakeWebSocket.latest().drop(1001);
    const waits: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const before = FakeWebSocket.instances.length;
      const waiting = calls.states[calls.states.length - 1];
      expect(waiting?.phase).toBe('waiting');
      const delay = waiting?.phase === 'waiting' ? waiting.retryAt - Date.now() : -1;
      vi.advanceTimersByTime(delay - 1);
      expect(FakeWebSocket.instances.length).toBe(before); // not a millisecond early
      vi.advanceTimersByTime(1);
      expect(FakeWebSocket.instances.length).toBe(before + 1);
      waits.push(delay);
      FakeWebSocket.latest().drop();
    }
    expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000]);

    // It comes back: the caller hears about the reopen (to reload), and the backoff starts over.
    vi.advanceTimersByTime(10_000);
    FakeWebSocket.latest().open();
    expect(calls.opens).toHaveBeenLastCalledWith({ reconnected: true });
    expect(calls.states[calls.states.length - 1]).toEqual({ phase: 'open' });
    FakeWebSocket.latest().drop();
    const waiting = calls.states[calls.states.length - 1];
    expect(waiting?.phase === 'waiting' && waiting.retryAt - Date.now()).toBe(500);
  });

  it('opens without subprotocols by default, and asks for them anew on every attempt', () => {
    start();
    expect(FakeWebSocket.latest().protocols).toEqual([]);
    FakeWebSocket.reset();
    let token = 'one';
    start({ protocols: () => ['taskflow', `taskflow.bearer.${token}`] });
    expect(FakeWebSocket.latest().protocols).toEqual(['taskflow', 'taskflow.bearer.one']);
    expect(FakeWebSocket.latest().url).toBe('ws://example.test/ws'); // never in the URL
    token = 'two';
    FakeWebSocket.latest().drop();
    vi.advanceTimersByTime(500);
    expect(FakeWebSocket.latest().protocols).toEqual(['taskflow', 'taskflow.bearer.two']);
  });

  it('reconnects at once on request, and stops for good when stopped', () => {
    const { connection, calls } = start();
    FakeWebSocket.latest().open();
    FakeWebSocket.latest().drop();
    connection.reconnectNow();
    expect(FakeWebSocket.instances).toHaveLength(2);

    connection.stop();
    // Still connecting: closed once it opens, which spares the browser's warning.
    expect(FakeWebSocket.latest().closedByClient).toBe(false);
    FakeWebSocket.latest().open();
    expect(FakeWebSocket.latest().closedByClient).toBe(true);
    expect(calls.opens).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('closes an open socket at once when stopped', () => {
    const { connection } = start();
    FakeWebSocket.latest().open();
    connection.stop();
    expect(FakeWebSocket.latest().closedByClient).toBe(true);
  });

  it('ignores a socket it has already replaced', () => {
    const { calls } = start();
    const first = FakeWebSocket.latest();
    first.drop();
    vi.advanceTimersByTime(500);
    // A late message from the dead socket must not be taken for the live one's.
    first.send({ task_id: 't1', status: 'DONE', updated_at: '2026-11-28T18:40:37Z' });
    expect(calls.events).not.toHaveBeenCalled();
  });
});
