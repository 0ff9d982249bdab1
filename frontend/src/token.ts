// The API token, asked for in the page and kept in sessionStorage (never built into the bundle:
// anyone who loads the page could read it there), and how it travels on the WebSocket.

/** Where the token is kept: per tab, gone when the tab closes. */
export const TOKEN_KEY = 'taskflow.token';

/** The subprotocol the server selects on `/ws`. */
export const WS_PROTOCOL = 'taskflow';
const WS_TOKEN_PREFIX = 'taskflow.bearer.';

/**
 * RFC 4648 URL-safe base64 of the token's UTF-8 bytes, without `=` padding: subprotocol names
 * allow only token characters, and a token may hold any.
 */
export function base64url(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The subprotocols to offer on `/ws`. A browser cannot set `Authorization` on a WebSocket, and a
 * `?token=` in the URL lands in proxy and access logs; the handshake's protocol header does not.
 * Without a token none are offered, as an API without tokens expects.
 */
export function wsProtocols(token: string | null): string[] {
  return token === null ? [] : [WS_PROTOCOL, `${WS_TOKEN_PREFIX}${base64url(token)}`];
}

export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  clear(): void;
}

/**
 * A store over `storage` (sessionStorage in the page). Storage can be disabled or full; the token
 * is then kept in memory for this page's life rather than lost on the next call.
 */
export function createTokenStore(storage: Storage | null = safeSessionStorage()): TokenStore {
  let memory: string | null = null;
  return {
    get() {
      try {
        const stored = storage?.getItem(TOKEN_KEY) ?? null;
        if (stored !== null && stored !== '') return stored;
      } catch {
        // unreadable storage: fall back to memory
      }
      return memory;
    },
    set(token) {
      memory = token;
      try {
        storage?.setItem(TOKEN_KEY, token);
      } catch {
        // kept in memory only
      }
    },
    clear() {
      memory = null;
      try {
        storage?.removeItem(TOKEN_KEY);
      } catch {
        // nothing stored
      }
    },
  };
}

function safeSessionStorage(): Storage | null {
  try {
    return typeof window === 'undefined' ? null : window.sessionStorage;
  } catch {
    return null; // some browsers throw on access when storage is blocked
  }
}
