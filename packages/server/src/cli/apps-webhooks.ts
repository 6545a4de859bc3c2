import type { Command } from 'commander';
import type { AppsUpdateGroup } from './apps.ts';

// `tixian apps update --webhook-url …` and `tixian apps webhooks list|remove` land with the
// webhooks issue.
export const webhookUpdate: AppsUpdateGroup = { options: [], apply: async () => [] };

export function registerWebhookCommands(_apps: Command): void {}
