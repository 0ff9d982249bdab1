// Vitest setup: unmount what each test rendered (Testing Library's auto-cleanup needs globals,
// which this project does not enable).

import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

afterEach(() => {
  cleanup();
});
