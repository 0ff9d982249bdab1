// The token's encoding for the WebSocket subprotocol (RFC 4648 base64url, UTF-8, no padding) and
// the store that keeps it in sessionStorage.

import { afterEach, describe, expect, it } from 'vitest';
import { base64url, createTokenStore, TOKEN_KEY, wsProtocols } from '../src/token';

describe('base64url', () => {
  it('uses the URL-safe alphabet and drops the padding', () => {
    expect(base64url('s3cret')).toBe('czNjcmV0');
    // Standard base64 would be "YWI/Pg==": '/' becomes '_', the padding goes.
    expect(base64url('ab?>')).toBe('YWI_Pg');
    expect(base64url('ÿþ')).toBe('w7_Dvg'); // "w7/Dvg==" in standard base64
  });

  it('encodes the UTF-8 bytes of a non-ASCII token', () => {
    expect(base64url('pässwörd🔑')).toBe('cMOkc3N3w7ZyZPCflJE');
    // Decoded the way the server does (URL-safe alphabet, no padding, UTF-8), each comes back.
    for (const token of ['pässwörd🔑', 'ключ-секрет', '令牌+/=', 'x'.repeat(101)]) {
      const encoded = base64url(token);
      expect(encoded).toMatch(/^[A-Za-z0-9_-]*$/);
      const binary = atob(encoded.replace(/-/g, '+').replace(/_/g, '/'));
      expect(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)))).toBe(token);
    }
  });
});

describe('wsProtocols', () => {
  it('offers taskflow and the token entry with a token, nothing without', () => {
    expect(wsProtocols('pässwörd🔑')).toEqual(['taskflow', 'taskflow.bearer.cMOkc3N3w7ZyZPCflJE']);
    expect(wsProtocols(null)).toEqual([]);
  });
});

describe('the token store', () => {
  afterEach(() => sessionStorage.clear());

  it('keeps the token in sessionStorage under taskflow.token, and forgets it', () => {
    const store = createTokenStore(sessionStorage);
    expect(store.get()).toBeNull();
    store.set('s3cret');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('s3cret');
    // A new store (a reload of the tab) finds it.
    expect(createTokenStore(sessionStorage).get()).toBe('s3cret');
    store.clear();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(createTokenStore(sessionStorage).get()).toBeNull();
  });

  it('defaults to the page sessionStorage, never localStorage', () => {
    createTokenStore().set('t');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('t');
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('keeps the token in memory when storage refuses it', () => {
    const broken = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
      removeItem: () => undefined,
    } as unknown as Storage;
    const store = createTokenStore(broken);
    store.set('t');
    expect(store.get()).toBe('t');
    store.clear();
    expect(store.get()).toBeNull();
  });
});
