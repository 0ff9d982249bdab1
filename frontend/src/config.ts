// Where the API and the WebSocket are: REACT_APP_API_BASE and REACT_APP_WS_URL at build time,
// otherwise the page's own origin (the API serves the built dashboard; the dev server proxies).

export interface Endpoints {
  apiBase: string;
  wsUrl: string;
}

/**
 * The WebSocket URL: the configured one, else `/ws` next to an absolute API base, else `/ws` on
 * the page's host with ws: or wss: matching the page's scheme.
 */
export function resolveEndpoints(
  env: { REACT_APP_API_BASE?: string; REACT_APP_WS_URL?: string },
  location: Pick<Location, 'protocol' | 'host'>,
): Endpoints {
  const apiBase = (env.REACT_APP_API_BASE ?? '').trim().replace(/\/+$/, '');
  const configuredWs = (env.REACT_APP_WS_URL ?? '').trim();
  if (configuredWs !== '') return { apiBase, wsUrl: configuredWs };
  if (/^https?:\/\//i.test(apiBase)) {
    return { apiBase, wsUrl: `${apiBase.replace(/^http/i, 'ws')}/ws` };
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return { apiBase, wsUrl: `${scheme}//${location.host}${apiBase}/ws` };
}
