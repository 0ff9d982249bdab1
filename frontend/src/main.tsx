// Entry point: builds the real dependencies (REST client with its token, WebSocket URL) and mounts
// the App.

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createApiClient } from './api';
import { App } from './components/App';
import { resolveEndpoints } from './config';
import type { DashboardDeps } from './useDashboard';
import './styles.css';

const endpoints = resolveEndpoints(import.meta.env, window.location);
const deps: DashboardDeps = { api: createApiClient(endpoints.apiBase, { token: endpoints.token }), wsUrl: endpoints.wsUrl };

const root = document.getElementById('root');
if (root === null) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <App deps={deps} />
  </StrictMode>,
);
