// Where the API and the WebSocket are, and the optional bearer token: REACT_APP_API_BASE,
// REACT_APP_WS_URL and REACT_APP_API_TOKEN (or VITE_API_TOKEN) at build time, otherwise the
// page's own origin (the API serves the built dashboard; the dev server proxies) and no token.

export interface Endpoints {
  apiBase: string;
  wsUrl: string;
  /** Sent as `Authorization: Bearer` on REST calls and as `?token=` on `/ws`; null for none. */
  token: string | null;
}

export interface EndpointEnv {
  REACT_APP_API_BASE?: string;
  REACT_APP_WS_URL?: string;
  REACT_APP_API_TOKEN?: string;
  VITE_API_TOKEN?: string;
}

/**
 * The WebSocket URL: the configured one, else `/ws` next to an absolute API base, else `/ws` on
 * the page's host with ws: or wss: matching the page's scheme. With a token, `?token=` is added,
 * because browsers cannot set headers on a WebSocket handshake.
 */
export function resolveEndpoints(env: EndpointEnv, location: Pick<Location, 'protocol' | 'host'>): Endpoints {
  const apiBase = (env.REACT_APP_API_BASE ?? '').trim().replace(/\/+$/, '');
  const token = firstNonBlank(env.REACT_APP_API_TOKEN, env.VITE_API_TOKEN);
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
  return { apiBase, wsUrl: token === null ? wsUrl : withToken(wsUrl, token), token };
}

function firstNonBlank(...values: (string | undefined)[]): string | null {
  for (const value of values) {
    const trimmed = value?.trim() ?? '';
    if (trimmed !== '') return trimmed;
  }
  return null;
}

/** `url` with `token=<token>` in its query, unless it already carries a token. */
function withToken(url: string, token: string): string {
  const [beforeHash = '', hash] = url.split('#', 2);
  if (/[?&]token=/.test(beforeHash)) return url;
  const separator = beforeHash.includes('?') ? '&' : '?';
  return `${beforeHash}${separator}token=${encodeURIComponent(token)}${hash === undefined ? '' : `#${hash}`}`;
}
