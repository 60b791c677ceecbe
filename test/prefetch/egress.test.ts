/**
 * The egress policy alone: which servers a policy lists, which addresses are refused unless a network
 * of the policy holds them, and which are refused always (cloud metadata).
 */
import t from 'tap';
import {
  addressAllowed,
  addressRules,
  checkedAddress,
  compileEgress,
  pinnedLookup,
  serverAllowed,
} from '../../src/prefetch/egress.js';

const rules = addressRules();
const open = compileEgress('public-only');
const v4 = (address: string) => ({ address, family: 4 as const });
const v6 = (address: string) => ({ address, family: 6 as const });

t.test('special-purpose addresses are refused, public ones allowed', async (t) => {
  for (const address of [
    '0.0.0.0',
    '10.1.2.3',
    '100.64.0.1',
    '127.0.0.1',
    '127.255.255.254',
    '169.254.169.254',
    '169.254.1.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
  ])
    t.notOk(addressAllowed(rules, open, v4(address)), address);
  for (const address of [
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:a00:1',
    '64:ff9b::a00:1',
    '2002:a00:1::1',
    'fc00::1',
    'fd00::1',
    'fd00:ec2::254',
    'fe80::1',
    'ff02::1',
  ])
    t.notOk(addressAllowed(rules, open, v6(address)), address);
  for (const address of ['8.8.8.8', '93.184.216.34', '172.32.0.1', '192.169.0.1'])
    t.ok(addressAllowed(rules, open, v4(address)), address);
  t.ok(addressAllowed(rules, open, v6('2606:4700::6810:85e5')), 'public IPv6');
});

t.test("a policy's networks open those ranges, never the metadata addresses", async (t) => {
  const lan = compileEgress('lan', [], ['10.1.0.0/16', '127.0.0.1', '169.254.0.0/16', 'fd00::/8']);
  t.ok(addressAllowed(rules, lan, v4('10.1.2.3')));
  t.notOk(addressAllowed(rules, lan, v4('10.2.0.1')), 'outside the allowed /16');
  t.ok(addressAllowed(rules, lan, v4('127.0.0.1')), 'a single address');
  t.notOk(addressAllowed(rules, lan, v4('127.0.0.2')));
  t.ok(addressAllowed(rules, lan, v4('169.254.1.1')));
  t.notOk(addressAllowed(rules, lan, v4('169.254.169.254')), 'metadata, even inside an allowed network');
  t.ok(addressAllowed(rules, lan, v6('fd00::5')));
  t.notOk(addressAllowed(rules, lan, v6('fd00:ec2::254')), 'AWS IPv6 metadata');
});

t.test('servers: a base URL is an origin and a path prefix; a host is any path', async (t) => {
  const policy = compileEgress('p', [
    'https://fhir.example.org/r4/',
    'ehr.example.org',
    'sandbox.example.org:8443',
    'http://127.0.0.1:8090',
  ]);
  const allowed = (url: string) => serverAllowed(policy, new URL(url));
  t.ok(allowed('https://fhir.example.org/r4'));
  t.ok(allowed('https://fhir.example.org/r4/'));
  t.ok(allowed('https://fhir.example.org/r4/tenant-a'));
  t.ok(allowed('https://FHIR.example.org:443/r4'), 'normalised like a URL');
  t.notOk(allowed('https://fhir.example.org/r4x'), 'a path prefix ends at a segment');
  t.notOk(allowed('https://fhir.example.org/'));
  t.notOk(allowed('http://fhir.example.org/r4'), 'another scheme');
  t.notOk(allowed('https://fhir.example.org:8443/r4'), 'another port');
  t.notOk(allowed('https://fhir.example.org.evil.example/r4'));
  t.ok(allowed('https://ehr.example.org/anything'));
  t.ok(allowed('https://ehr.example.org:9443/fhir'), 'a host without port: any port');
  t.ok(allowed('https://sandbox.example.org:8443/fhir'));
  t.notOk(allowed('https://sandbox.example.org/fhir'), 'a host with a port: that port');
  t.ok(allowed('http://127.0.0.1:8090/fhir'));
  t.notOk(allowed('http://127.0.0.1:8091/fhir'));
  t.notOk(serverAllowed(compileEgress('none'), new URL('https://fhir.example.org/r4')), 'empty list');
});

t.test('checkedAddress resolves names, not literals, and refuses metadata names unresolved', async (t) => {
  const calls: string[] = [];
  const resolve = async (host: string) => {
    calls.push(host);
    return [v4('93.184.216.34')];
  };
  const ok = await checkedAddress(new URL('https://fhir.example.org/r4'), open, rules, resolve);
  t.same(ok, { ok: true, address: v4('93.184.216.34') });
  t.same(await checkedAddress(new URL('https://[::1]/'), open, rules, resolve), {
    ok: false,
    refusal: 'forbidden-address',
  });
  t.same(await checkedAddress(new URL('http://metadata.google.internal./'), open, rules, resolve), {
    ok: false,
    refusal: 'forbidden-address',
  });
  t.same(await checkedAddress(new URL('https://nowhere.example/'), open, rules, async () => []), {
    ok: false,
    refusal: 'unresolvable',
  });
  t.same(calls, ['fhir.example.org']);
});

t.test('the pinned lookup answers the checked address in both calling conventions', async (t) => {
  const lookup = pinnedLookup(v6('2606:4700::1'));
  lookup('anything', { all: true }, (error, addresses) => {
    t.equal(error, null);
    t.same(addresses, [{ address: '2606:4700::1', family: 6 }]);
  });
  lookup('anything', {}, (error, address, family) => {
    t.equal(error, null);
    t.equal(address, '2606:4700::1');
    t.equal(family, 6);
  });
});
