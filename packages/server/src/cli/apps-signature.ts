import type { AppsUpdateGroup } from './apps.ts';

// `tixian apps update --rsa-public-key-file … --require-signature …` lands with the request
// signatures issue.
export const signatureUpdate: AppsUpdateGroup = { options: [], apply: async () => [] };
