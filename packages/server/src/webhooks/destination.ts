import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where a live-mode webhook may go (SSRF). A merchant's URL must not make tixian POST to the
 * machine it runs on, its private network or the cloud metadata service (169.254.169.254), and
 * store the first KiB of what answered. Only globally routable unicast addresses pass: loopback,
 * private, carrier-grade NAT, link-local, unique-local, multicast, broadcast, unspecified,
 * reserved and documentation ranges are refused, IPv4 and IPv6 alike; an IPv4-mapped (or
 * IPv4-embedding: 6to4, Teredo, NAT64) IPv6 address is refused too, as ipaddr.js names those ranges.
 *
 * The check runs at connect time on the addresses the socket will actually use (a `lookup` hook
 * for hostnames; IP literals, which net.connect never resolves, are checked before the request),
 * so a DNS answer cannot change between the check and the connection (DNS rebinding).
 * Test endpoints are often a developer's own machine or network, so test mode allows loopback and
 * private addresses, but never link-local ones (the cloud metadata service, 169.254.169.254, and
 * fe80::/10), AWS's IPv6 metadata address, nor unspecified, multicast, broadcast or reserved ones:
 * a console operator of one merchant could otherwise point a test endpoint at the metadata service,
 * fire a test event and read its answer in the deliveries view. `--allow-private-webhooks` lifts both.
 */

/** The error code a refused destination fails with (seen in the try's error text). */
export const PRIVATE_DESTINATION = 'ERR_WEBHOOK_PRIVATE_DESTINATION';

/**
 * The address as a connection would reach it: an IPv6 address that carries an IPv4 one
 * (IPv4-mapped `::ffff:a.b.c.d`, the deprecated IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
 * 6to4 `2002::/16`) as that IPv4 address. Null for text that is no address.
 */
function effectiveAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (!ipaddr.isValid(address)) return null;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed;
  const v6 = parsed as ipaddr.IPv6;
  const p = v6.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  // ::a.b.c.d (not :: and ::1, which are their own ranges).
  if (p.slice(0, 6).every((x) => x === 0) && (p[6]! !== 0 || p[7]! > 1)) return v4(p[6]!, p[7]!);
  if (v6.range() === 'rfc6052') return v4(p[6]!, p[7]!);
  if (v6.range() === '6to4') return v4(p[1]!, p[2]!);
  return v6;
}

/**
 * True for an address a live-mode webhook may be sent to. Invalid text is not public. An
 * IPv4-mapped address is its IPv4 address; any other IPv6 address that carries an IPv4 one is
 * refused outright (ipaddr.js calls the IPv4-compatible `::a.b.c.d` unicast).
 */
export function isPublicAddress(address: string): boolean {
  const reached = effectiveAddress(address);
  if (reached === null) return false;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && reached.kind() === 'ipv4' && !(parsed as ipaddr.IPv6).isIPv4MappedAddress()) return false;
  return reached.range() === 'unicast';
}

const NEVER_IN_TEST_MODE = new Set(['linkLocal', 'unspecified', 'multicast', 'broadcast', 'reserved']);
/** AWS's instance metadata service over IPv6 (a unique-local address, which test mode otherwise allows). */
const METADATA_V6 = ipaddr.parse('fd00:ec2::254').toNormalizedString();

/** True for an address a test-mode webhook may be sent to: loopback and private ones too, not link-local or metadata. */
export function isTestModeAddress(address: string): boolean {
  const parsed = effectiveAddress(address);
  if (parsed === null || NEVER_IN_TEST_MODE.has(parsed.range())) return false;
  return parsed.toNormalizedString() !== METADATA_V6;
}

/** Which addresses a try may go to, by the endpoint's mode. */
export const destinationRule = (livemode: boolean): ((address: string) => boolean) => (livemode ? isPublicAddress : isTestModeAddress);

/** The host of a URL as net.connect sees it: IPv6 literals without their brackets. */
export function urlHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** An IP-literal host the rule refuses, or null (a hostname is checked when it is resolved). */
export function refusedLiteral(url: URL, allowed: (address: string) => boolean = isPublicAddress): string | null {
  const host = urlHost(url);
  return isIP(host) !== 0 && !allowed(host) ? host : null;
}

export function privateDestinationError(host: string, address: string, allowed: (address: string) => boolean = isPublicAddress): NodeJS.ErrnoException {
  const what = allowed === isPublicAddress ? 'not a public address' : 'a link-local, metadata or otherwise unreachable address';
  const err: NodeJS.ErrnoException = new Error(
    `refused: ${host === address ? address : `${host} resolves to ${address}`}, which is ${what} (allow with --allow-private-webhooks)`,
  );
  err.code = PRIVATE_DESTINATION;
  return err;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect that resolves as usual and refuses the whole answer if the rule
 * refuses any address in it (an attacker's name may mix a public address with a private one).
 */
const guardedLookup = (allowed: (address: string) => boolean) => (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !allowed(a.address));
    if (bad) return callback(privateDestinationError(hostname, bad.address, allowed), []);
    if (addresses.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
};
/** Live mode: public addresses only. */
export const publicOnlyLookup = guardedLookup(isPublicAddress);
/** Test mode: no link-local or metadata addresses. */
export const testModeLookup = guardedLookup(isTestModeAddress);

/** A URL fit for logs: scheme, host, port and path; no credentials, query or fragment (they may hold secrets). */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
