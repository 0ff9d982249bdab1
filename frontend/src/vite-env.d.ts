// Types of the build-time variables Vite inlines (envPrefix includes REACT_APP_).
/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly REACT_APP_API_BASE?: string;
  readonly REACT_APP_WS_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
