// Entry point: builds the real dependencies (REST client reading the token store, WebSocket URL)
// and mounts the App.

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createApiClient } from './api';
import { App } from './components/App';
import { resolveEndpoints } from './config';
import { createTokenStore } from './token';
import type { DashboardDeps } from './useDashboard';
import './styles.css';

// Named one by one: passing `import.meta.env` whole makes Vite inline every REACT_APP_*/VITE_*
// variable of the build environment into the bundle, an old REACT_APP_API_TOKEN included.
const endpoints = resolveEndpoints(
  { REACT_APP_API_BASE: import.meta.env.REACT_APP_API_BASE, REACT_APP_WS_URL: import.meta.env.REACT_APP_WS_URL },
  window.location,
);
const tokens = createTokenStore();
const deps: DashboardDeps = {
  api: createApiClient(endpoints.apiBase, { token: () => tokens.get() }),
  wsUrl: endpoints.wsUrl,
  tokens,
};

const root = document.getElementById('root');
if (root === null) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <App deps={deps} />
  </StrictMode>,
);
