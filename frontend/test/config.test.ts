// Where the dashboard looks for the API and the WebSocket, by configuration and page origin; no
// token is configured at build time.

import { describe, expect, it } from 'vitest';
import { resolveEndpoints } from '../src/config';

const page = { protocol: 'https:', host: 'dash.example.com' };

describe('resolveEndpoints', () => {
  it('defaults to the page origin, with wss: on an https: page, and no token in the URL', () => {
    expect(resolveEndpoints({}, page)).toEqual({ apiBase: '', wsUrl: 'wss://dash.example.com/ws' });
    expect(resolveEndpoints({}, { protocol: 'http:', host: '127.0.0.1:5001' }).wsUrl).toBe('ws://127.0.0.1:5001/ws');
  });

  it('puts the WebSocket next to an absolute API base', () => {
    expect(resolveEndpoints({ REACT_APP_API_BASE: 'https://api.example.com/' }, page)).toEqual({
      apiBase: 'https://api.example.com',
      wsUrl: 'wss://api.example.com/ws',
    });
  });

  it('takes REACT_APP_WS_URL as given', () => {
    expect(resolveEndpoints({ REACT_APP_API_BASE: '/api', REACT_APP_WS_URL: 'ws://events:9000/ws' }, page)).toEqual({
      apiBase: '/api',
      wsUrl: 'ws://events:9000/ws',
    });
  });

  it('builds no token into the WebSocket URL, whatever the build environment holds', () => {
    // An old deployment may still set REACT_APP_API_TOKEN: it must not reach the URL (logs).
    const env = { REACT_APP_API_TOKEN: 's3cret' } as Parameters<typeof resolveEndpoints>[0];
    expect(resolveEndpoints(env, page)).toEqual({ apiBase: '', wsUrl: 'wss://dash.example.com/ws' });
  });
});
