// Types of the build-time variables Vite inlines (envPrefix includes REACT_APP_).
/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly REACT_APP_API_BASE?: string;
  readonly REACT_APP_WS_URL?: string;
  readonly REACT_APP_API_TOKEN?: string;
  readonly VITE_API_TOKEN?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
