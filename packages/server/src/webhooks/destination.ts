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
 * Test mode is not checked: test endpoints are often a developer's own machine.
 */

/** The error code a refused destination fails with (seen in the try's error text). */
export const PRIVATE_DESTINATION = 'ERR_WEBHOOK_PRIVATE_DESTINATION';

/** True for an address a live-mode webhook may be sent to. Invalid text is not public. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed.range() === 'unicast';
}

/** The host of a URL as net.connect sees it: IPv6 literals without their brackets. */
export function urlHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** An IP-literal host that is not public, or null (a hostname is checked when it is resolved). */
export function refusedLiteral(url: URL): string | null {
  const host = urlHost(url);
  return isIP(host) !== 0 && !isPublicAddress(host) ? host : null;
}

export function privateDestinationError(host: string, address: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `refused: ${host === address ? address : `${host} resolves to ${address}`}, which is not a public address (allow with --allow-private-webhooks)`,
  );
  err.code = PRIVATE_DESTINATION;
  return err;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect that resolves as usual and refuses the whole answer if any
 * address in it is not public (an attacker's name may mix a public address with a private one).
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) return callback(privateDestinationError(hostname, bad.address), []);
    if (addresses.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
}

/** A URL fit for logs: scheme, host, port and path; no credentials, query or fragment (they may hold secrets). */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
