// Where the dashboard looks for the API and the WebSocket, by configuration and page origin, and
// where the optional token goes.

import { describe, expect, it } from 'vitest';
import { resolveEndpoints } from '../src/config';

const page = { protocol: 'https:', host: 'dash.example.com' };

describe('resolveEndpoints', () => {
  it('defaults to the page origin, with wss: on an https: page, and no token', () => {
    expect(resolveEndpoints({}, page)).toEqual({ apiBase: '', wsUrl: 'wss://dash.example.com/ws', token: null });
    expect(resolveEndpoints({}, { protocol: 'http:', host: '127.0.0.1:5001' }).wsUrl).toBe('ws://127.0.0.1:5001/ws');
  });

  it('puts the WebSocket next to an absolute API base', () => {
    expect(resolveEndpoints({ REACT_APP_API_BASE: 'https://api.example.com/' }, page)).toEqual({
      apiBase: 'https://api.example.com',
      wsUrl: 'wss://api.example.com/ws',
      token: null,
    });
  });

  it('takes REACT_APP_WS_URL as given', () => {
    expect(resolveEndpoints({ REACT_APP_API_BASE: '/api', REACT_APP_WS_URL: 'ws://events:9000/ws' }, page)).toEqual({
      apiBase: '/api',
      wsUrl: 'ws://events:9000/ws',
      token: null,
    });
  });

  it('adds a configured token to the WebSocket URL, encoded', () => {
    expect(resolveEndpoints({ REACT_APP_API_TOKEN: ' s3cret/+= ' }, page)).toEqual({
      apiBase: '',
      wsUrl: 'wss://dash.example.com/ws?token=s3cret%2F%2B%3D',
      token: 's3cret/+=',
    });
    expect(resolveEndpoints({ VITE_API_TOKEN: 'v' }, page).wsUrl).toBe('wss://dash.example.com/ws?token=v');
    // REACT_APP_ wins when both are set; a configured URL keeps its own query.
    expect(resolveEndpoints({ REACT_APP_API_TOKEN: 'r', VITE_API_TOKEN: 'v', REACT_APP_WS_URL: 'ws://e/ws?x=1' }, page)).toMatchObject({
      wsUrl: 'ws://e/ws?x=1&token=r',
      token: 'r',
    });
  });

  it('treats a blank token as none', () => {
    expect(resolveEndpoints({ REACT_APP_API_TOKEN: '  ', VITE_API_TOKEN: '' }, page)).toMatchObject({
      wsUrl: 'wss://dash.example.com/ws',
      token: null,
    });
  });
});
