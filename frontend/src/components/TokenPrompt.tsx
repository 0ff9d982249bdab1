// Asks for the API token when the API answered 401: a labelled password field and a submit
// button. The token is kept in this tab's sessionStorage only (see token.ts).

import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { AuthPhase } from '../useDashboard';

const MESSAGES: Record<Exclude<AuthPhase, 'ok'>, string> = {
  needed: 'The API needs a token. It is kept in this browser tab only.',
  refused: 'The API refused that token. Check it and try again.',
  checking: 'Checking the token…',
};

export function TokenPrompt({ phase, onSubmit }: { phase: Exclude<AuthPhase, 'ok'>; onSubmit(token: string): void }) {
  const [value, setValue] = useState('');
  const input = useRef<HTMLInputElement>(null);
  // Focus goes to the field when the prompt appears and again when a token was refused, so the
  // person can type at once.
  useEffect(() => {
    if (phase !== 'checking') input.current?.focus();
  }, [phase]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (value.trim() !== '') onSubmit(value);
  };

  return (
    <section className="panel token-prompt" aria-labelledby="token-prompt-title" data-auth={phase}>
      <h2 id="token-prompt-title">API token required</h2>
      <form onSubmit={submit}>
        <label htmlFor="api-token">API token</label>
        <input
          id="api-token"
          ref={input}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={value}
          aria-describedby="api-token-hint"
          aria-invalid={phase === 'refused'}
          onChange={(event) => setValue(event.target.value)}
        />
        <button type="submit" className="button button--primary" disabled={phase === 'checking' || value.trim() === ''}>
          Use token
        </button>
      </form>
      <p id="api-token-hint" className={phase === 'refused' ? 'form__error' : 'hint'} role={phase === 'refused' ? 'alert' : 'status'}>
        {MESSAGES[phase]}
      </p>
    </section>
  );
}
