// Vite: the React build, the dev server on 5001 that proxies the API (so the same-origin defaults
// work in development), and Vitest's settings.

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

const api = process.env.TASKFLOW_API || 'http://127.0.0.1:8000';
const proxy = {
  '/tasks': { target: api },
  '/stats': { target: api },
  '/healthz': { target: api },
  '/ws': { target: api, ws: true },
};

export default defineConfig({
  plugins: [react()],
  // REACT_APP_* for compatibility with the Create React App convention the deployment uses.
  envPrefix: ['VITE_', 'REACT_APP_'],
  // The API serves the built files from `/`.
  base: '/',
  server: { port: 5001, strictPort: true, proxy },
  preview: { port: 5001, strictPort: true, proxy },
  build: { outDir: 'dist', target: 'es2022' },
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.{ts,tsx}'],
    setupFiles: ['test/setup.ts'],
  },
});
