import { createContext, useContext } from 'react';
import type { Operator } from './api.ts';

export interface ConsoleScope {
  operator: Operator;
  app: string;
  mode: 'test' | 'live';
}

export const ScopeContext = createContext<ConsoleScope | null>(null);

export function useScope(): ConsoleScope {
  const scope = useContext(ScopeContext);
  if (!scope) throw new Error('useScope outside the console layout');
  return scope;
}
