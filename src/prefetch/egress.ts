/**
 * Egress control for the fallback FHIR fetch (issue 16 §6: `fhirServer` is named by the caller, and the
 * service sends the EHR's bearer token there, so an unchecked value is a server-side request forgery).
 *
 * Each caller has a policy: the FHIR base URLs or hosts it may name (`fhirServers` of its trusted
 * issuer entry; the `fhirServerAllowlist` setting when authentication is disabled), and the networks
 * its servers may be in beyond the public internet (`fhirAllowedNetworks`; `fhirAllowedNetworks`).
 * A `fhirServer` not on the list is refused before any lookup or connection. Then every address its
 * host resolves to is checked: loopback, private, link-local, carrier-grade NAT, multicast, reserved,
 * IPv4-mapped/translated IPv6 and unique-local ranges are refused unless a network of the policy holds
 * the address, and cloud metadata addresses and host names are refused always. The connection is made to
 * the address that was checked (`pinnedLookup`), never to a second answer of the DNS (no rebinding).
 *
 * Pure apart from the resolver (injected: tests map names to addresses without a DNS).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Host name → every address it resolves to (the system resolver by default). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

/** One allowed server: an origin with a path prefix (a base URL), or a host (and port) with any path. */
interface AllowedServer {
  /** `https:`/`http:` for a base URL; null for a bare host. */
  protocol: string | null;
  host: string;
  /** null: any port (a bare host without one). */
  port: string | null;
  /** Path prefix without trailing slash ('' for the root). */
  path: string;
}

export interface EgressPolicy {
  /** Who the policy is for (an issuer, or the auth-disabled setting), for the log. */
  readonly owner: string;
  readonly servers: readonly AllowedServer[];
  /** Networks explicitly allowed beyond the public internet; null: none. */
  readonly networks: Ranges | null;
}

export type EgressRefusal = 'not-allowed' | 'forbidden-address' | 'unresolvable';

/** Addresses a FHIR server is not expected at (RFC 6890 special-purpose registries, and more). */
const SPECIAL: readonly [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"
  ['10.0.0.0', 8, 'ipv4'], // private
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT (Alibaba's metadata service is in it)
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata
  ['172.16.0.0', 12, 'ipv4'], // private
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.0.2.0', 24, 'ipv4'], // documentation
  ['192.168.0.0', 16, 'ipv4'], // private
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['198.51.100.0', 24, 'ipv4'], // documentation
  ['203.0.113.0', 24, 'ipv4'], // documentation
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['::', 96, 'ipv6'], // IPv4-compatible (deprecated)
  ['::ffff:0:0', 96, 'ipv6'], // IPv4-mapped: would reach an IPv4 address unchecked
  ['64:ff9b::', 96, 'ipv6'], // NAT64
  ['64:ff9b:1::', 48, 'ipv6'], // local NAT64
  ['100::', 64, 'ipv6'], // discard
  ['2001::', 23, 'ipv6'], // IETF protocol assignments (Teredo…)
  ['2001:db8::', 32, 'ipv6'], // documentation
  ['2002::', 16, 'ipv6'], // 6to4: embeds an IPv4 address
  ['fc00::', 7, 'ipv6'], // unique local (fd00::/8; AWS metadata fd00:ec2::254)
  ['fe80::', 10, 'ipv6'], // link-local
  ['fec0::', 10, 'ipv6'], // site-local (deprecated)
  ['ff00::', 8, 'ipv6'], // multicast
];

/** Cloud instance metadata: refused even inside an allowed network. */
const METADATA_ADDRESSES: readonly [string, 'ipv4' | 'ipv6'][] = [
  ['169.254.169.254', 'ipv4'],
  ['169.254.170.2', 'ipv4'],
  ['100.100.100.200', 'ipv4'],
  ['fd00:ec2::254', 'ipv6'],
];
const METADATA_HOSTS = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.com',
  'instance-data',
  'instance-data.ec2.internal',
]);

/**
 * One BlockList per family: Node matches an IPv4 address against IPv6 rules through its IPv4-mapped
 * form, so `::ffff:0:0/96` in a mixed list would refuse every IPv4 address.
 */
interface Ranges {
  v4: BlockList;
  v6: BlockList;
}

function ranges(): Ranges {
  return { v4: new BlockList(), v6: new BlockList() };
}

function inRanges(list: Ranges, address: ResolvedAddress): boolean {
  return address.family === 6
    ? list.v6.check(address.address, 'ipv6')
    : list.v4.check(address.address, 'ipv4');
}

/** Built per call (a BlockList is mutable: no module-level instance). */
function specialRanges(): Ranges {
  const list = ranges();
  for (const [address, prefix, type] of SPECIAL)
    (type === 'ipv6' ? list.v6 : list.v4).addSubnet(address, prefix, type);
  return list;
}

function metadata(): Ranges {
  const list = ranges();
  for (const [address, type] of METADATA_ADDRESSES)
    (type === 'ipv6' ? list.v6 : list.v4).addAddress(address, type);
  return list;
}

const stripBrackets = (host: string) => host.replace(/^\[(.*)\]$/, '$1');

function parseServer(entry: string): AllowedServer {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    const url = new URL(entry);
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new Error(`${entry}: a FHIR base URL is http or https`);
    if (url.search || url.hash || url.username || url.password)
      throw new Error(`${entry}: a FHIR base URL has no query, fragment or credentials`);
    return {
      protocol: url.protocol,
      host: url.hostname,
      port: url.port,
      path: url.pathname.replace(/\/+$/, ''),
    };
  }
  // A bare host, with an optional port: parsed as the host of a URL so it is normalised the same way.
  let url: URL;
  try {
    url = new URL(`https://${entry}`);
  } catch {
    throw new Error(`${entry}: not a host name, address or URL`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password || !url.hostname)
    throw new Error(`${entry}: a host is given without path (or as a full base URL)`);
  return { protocol: null, host: url.hostname, port: /:\d+$/.test(entry) ? url.port : null, path: '' };
}

function parseNetwork(entry: string, list: Ranges): void {
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
  if (
    family === 0 ||
    rest.length > 0 ||
    !Number.isInteger(bits) ||
    bits < 0 ||
    bits > (family === 6 ? 128 : 32)
  )
    throw new Error(`${entry}: not an address or CIDR network (e.g. 127.0.0.0/8, ::1/128)`);
  if (family === 6) list.v6.addSubnet(address, bits, 'ipv6');
  else list.v4.addSubnet(address, bits, 'ipv4');
}

/**
 * Compiles a policy.
 * @param owner who it is for, for the log (an issuer, or "auth-disabled")
 * @param servers base URLs (`https://fhir.example.org/r4`) or hosts (`fhir.example.org`, `127.0.0.1:8090`)
 * @param networks CIDR networks allowed beyond the public internet (`127.0.0.0/8`, `10.1.0.0/16`)
 * @throws Error naming the entry that is not valid
 */
export function compileEgress(
  owner: string,
  servers: readonly string[] = [],
  networks: readonly string[] = [],
): EgressPolicy {
  let allowed: Ranges | null = null;
  if (networks.length > 0) {
    allowed = ranges();
    for (const entry of networks) parseNetwork(entry, allowed);
  }
  return { owner, servers: servers.map(parseServer), networks: allowed };
}

/** Whether the policy lists the server a `fhirServer` URL names (checked before any lookup). */
export function serverAllowed(policy: EgressPolicy, url: URL): boolean {
  const path = url.pathname.replace(/\/+$/, '');
  return policy.servers.some(
    (s) =>
      s.host === url.hostname &&
      (s.protocol === null || s.protocol === url.protocol) &&
      (s.port === null || s.port === url.port) &&
      (path === s.path || path.startsWith(`${s.path}/`)),
  );
}

/** The addresses the service checks against, built once per fetcher. */
export interface AddressRules {
  special: Ranges;
  metadata: Ranges;
}

export function addressRules(): AddressRules {
  return { special: specialRanges(), metadata: metadata() };
}

/** Whether the service may connect to `address` for a caller with this policy. */
export function addressAllowed(rules: AddressRules, policy: EgressPolicy, address: ResolvedAddress): boolean {
  if (inRanges(rules.metadata, address)) return false;
  if (!inRanges(rules.special, address)) return true;
  return policy.networks ? inRanges(policy.networks, address) : false;
}

/**
 * Resolves the host of `url` and checks every address it has (one forbidden answer refuses the host:
 * a resolver mixing public and private answers is not trusted).
 * @returns the address to connect to, or the refusal
 */
export async function checkedAddress(
  url: URL,
  policy: EgressPolicy,
  rules: AddressRules,
  resolve: Resolver,
): Promise<{ ok: true; address: ResolvedAddress } | { ok: false; refusal: EgressRefusal }> {
  const host = stripBrackets(url.hostname).toLowerCase();
  if (METADATA_HOSTS.has(host.replace(/\.$/, ''))) return { ok: false, refusal: 'forbidden-address' };
  const literal = isIP(host);
  let addresses: ResolvedAddress[];
  if (literal !== 0) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      return { ok: false, refusal: 'unresolvable' };
    }
  }
  if (addresses.length === 0) return { ok: false, refusal: 'unresolvable' };
  if (!addresses.every((a) => addressAllowed(rules, policy, a)))
    return { ok: false, refusal: 'forbidden-address' };
  return { ok: true, address: addresses[0]! };
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for node:http(s) that answers with the address already checked, whatever the name: the
 * socket connects there and nowhere else (the TLS name check still uses the host name).
 */
export function pinnedLookup(address: ResolvedAddress) {
  return (_hostname: string, options: { all?: boolean } | number | undefined, callback: LookupCallback) => {
    if (typeof options === 'object' && options?.all) callback(null, [{ ...address }]);
    else callback(null, address.address, address.family);
  };
}
