// Where the API and the WebSocket are: REACT_APP_API_BASE and REACT_APP_WS_URL at build time,
// otherwise the page's own origin (the API serves the built dashboard; the dev server proxies).
// No token is configured here: one built in would be readable by anyone who loads the page, so
// the page asks for it when the API answers 401 (see token.ts).

export interface Endpoints {
  apiBase: string;
  wsUrl: string;
}

export interface EndpointEnv {
  REACT_APP_API_BASE?: string | undefined;
  REACT_APP_WS_URL?: string | undefined;
}

/**
 * The WebSocket URL: the configured one, else `/ws` next to an absolute API base, else `/ws` on
 * the page's host with ws: or wss: matching the page's scheme.
 */
export function resolveEndpoints(env: EndpointEnv, location: Pick<Location, 'protocol' | 'host'>): Endpoints {
  const apiBase = (env.REACT_APP_API_BASE ?? '').trim().replace(/\/+$/, '');
  const configuredWs = (env.REACT_APP_WS_URL ?? '').trim();
  let wsUrl: string;
  if (configuredWs !== '') {
    wsUrl = configuredWs;
  } else if (/^https?:\/\//i.test(apiBase)) {
    wsUrl = `${apiBase.replace(/^http/i, 'ws')}/ws`;
  } else {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    wsUrl = `${scheme}//${location.host}${apiBase}/ws`;
  }
  return { apiBase, wsUrl };
}
