import { readFileSync, statSync } from 'node:fs';
import { Option } from 'commander';
import type { AppsUpdateGroup } from './apps.ts';
import {
  parseMerchantPublicKey,
  REQUIRE_SIGNATURE_CHOICES,
  requireSignatureSwitches,
  updateSignatureSettings,
  type RequireSignature,
  type SignatureSettings,
  type SignatureSettingsUpdate,
} from '../services/app_settings.ts';
import { UsageError } from './shared.ts';

// A PEM public key is under 2 KiB even at 8192 bits; anything far larger is the wrong file.
const KEY_FILE_MAX_BYTES = 64 * 1024;

/**
 * `tixian apps update APP_ID --rsa-public-key-file FILE --require-signature none|test|live|both`:
 * the merchant's RSA public key (PEM SPKI or PKCS#1) and the modes whose POST/PUT requests must
 * be signed. A running server picks the change up within 5 s.
 */
export const signatureUpdate: AppsUpdateGroup = {
  options: [
    new Option('--rsa-public-key-file <file>', "the merchant's RSA public key (PEM, ≥ 2048 bits) that checks request signatures"),
    new Option('--require-signature <modes>', 'modes whose POST/PUT requests must be signed').choices(REQUIRE_SIGNATURE_CHOICES),
  ],

  check(_rt, opts) {
    // The key file is read and parsed here too: an unreadable or refused key stops the command
    // before any group writes.
    const file = opts.rsaPublicKeyFile as string | undefined;
    if (file !== undefined) parseMerchantPublicKey(readKeyFile(file));
  },

  async apply(rt, appId, opts) {
    const file = opts.rsaPublicKeyFile as string | undefined;
    const which = opts.requireSignature as RequireSignature | undefined;
    if (file === undefined && which === undefined) return [];

    const update: SignatureSettingsUpdate = which === undefined ? {} : requireSignatureSwitches(which);
    if (file !== undefined) update.rsa_public_key = readKeyFile(file);
    return describe(await updateSignatureSettings(rt, appId, update), file !== undefined);
  },
};

function readKeyFile(file: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new UsageError(`cannot read ${file}`);
  }
  if (size > KEY_FILE_MAX_BYTES) throw new UsageError(`${file} is larger than ${KEY_FILE_MAX_BYTES} bytes: not a PEM public key`);
  return readFileSync(file, 'utf8');
}

function describe(s: SignatureSettings, keyChanged: boolean): string[] {
  const lines: string[] = [];
  if (keyChanged) lines.push(`app ${s.app}: RSA public key set (${s.rsa_public_key_bits} bits, SHA-256 ${s.rsa_public_key_fingerprint})`);
  const modes = [s.require_signature_test && 'test', s.require_signature_live && 'live'].filter(Boolean);
  if (modes.length) lines.push(`app ${s.app}: POST/PUT requests must be signed in ${modes.join(' and ')} mode`);
  else if (s.rsa_public_key) lines.push(`app ${s.app}: signatures are checked when sent but not required (--require-signature test|live|both)`);
  else lines.push(`app ${s.app}: no RSA public key; signatures are not checked`);
  return lines;
}
