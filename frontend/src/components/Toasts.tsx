// Notifications for finished tasks, in a polite live region. Each leaves after a few seconds,
// unless the pointer or keyboard focus is on it.

import { useEffect, useState } from 'react';
import type { Toast } from '../store';

const SHOW_MS = 6000;

function ToastItem({ toast, onDismiss, onOpen }: { toast: Toast; onDismiss(id: number): void; onOpen(taskId: string): void }) {
  const [paused, setPaused] = useState(false);
  useEffect(() => {
    if (paused) return undefined;
    const timer = setTimeout(() => onDismiss(toast.id), SHOW_MS);
    return () => clearTimeout(timer);
  }, [paused, toast.id, onDismiss]);

  return (
    <li
      className={`toast toast--${toast.status.toLowerCase()}`}
      onMouseEnter={() => setPaused(true)}
      onMouseLeave={() => setPaused(false)}
      onFocus={() => setPaused(true)}
      onBlur={() => setPaused(false)}
    >
      <p className="toast__text">
        <strong>{toast.status}</strong> {toast.title}
        {toast.message !== null && <span className="toast__message">{toast.message}</span>}
      </p>
      <div className="toast__actions">
        <button type="button" className="button button--small" onClick={() => onOpen(toast.taskId)}>
          Open<span className="visually-hidden"> {toast.title}</span>
        </button>
        <button type="button" className="button button--small button--quiet" onClick={() => onDismiss(toast.id)}>
          Dismiss<span className="visually-hidden"> notification for {toast.title}</span>
        </button>
      </div>
    </li>
  );
}

export function Toasts({ toasts, onDismiss, onOpen }: { toasts: Toast[]; onDismiss(id: number): void; onOpen(taskId: string): void }) {
  // The live region is always in the page: one inserted together with its content is often not
  // announced.
  return (
    <section className="toasts" aria-label="Notifications">
      <ul aria-live="polite" aria-relevant="additions" className="toasts__list">
        {toasts.map((toast) => (
          <ToastItem key={toast.id} toast={toast} onDismiss={onDismiss} onOpen={onOpen} />
        ))}
      </ul>
    </section>
  );
}
