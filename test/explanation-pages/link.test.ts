import { createHmac } from 'node:crypto';
import t from 'tap';
import { createLinkSigner } from '../../src/explanation-pages/link.js';
import { NOW } from '../helpers/app.js';

const KEY = 'k'.repeat(32);
const UUID = '00000000-0000-4000-8000-000000000001';
const NOW_S = NOW.getTime() / 1000;

t.test('a link signs "uuid.exp" with HMAC-SHA256 in base64url and expires after the TTL', async (t) => {
  const signer = createLinkSigner({ key: KEY, ttlS: 600, now: () => NOW });
  const { exp, sig } = signer.sign(UUID);
  t.equal(exp, NOW_S + 600);
  t.equal(sig, createHmac('sha256', KEY).update(`${UUID}.${exp}`).digest('base64url'));
  t.equal(sig.length, 43);
  t.equal(signer.verify(UUID, String(exp), sig), true);
});

t.test('tampered, expired or malformed links are refused', async (t) => {
  let now = NOW;
  const signer = createLinkSigner({ key: KEY, ttlS: 600, now: () => now });
  const { exp, sig } = signer.sign(UUID);
  t.equal(signer.verify('00000000-0000-4000-8000-000000000002', String(exp), sig), false, 'other uuid');
  t.equal(signer.verify(UUID, String(exp + 1), sig), false, 'later exp');
  t.equal(signer.verify(UUID, String(exp - 1), sig), false, 'earlier exp');
  const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  t.equal(signer.verify(UUID, String(exp), flipped), false, 'one character of the signature');
  t.equal(signer.verify(UUID, String(exp), sig.slice(0, 42)), false, 'signature too short');
  t.equal(signer.verify(UUID, String(exp), `${sig}A`), false, 'signature too long');
  t.equal(signer.verify(UUID, String(exp), `${sig.slice(0, 42)}=`), false, 'not base64url');
  t.equal(signer.verify(UUID, ` ${exp}`, sig), false, 'exp not digits only');
  t.equal(signer.verify(UUID, `0${exp}`, sig), false, 'exp with a leading zero');
  t.equal(signer.verify(UUID, undefined, sig), false, 'no exp');
  t.equal(signer.verify(UUID, String(exp), undefined), false, 'no sig');
  t.equal(signer.verify(UUID, [String(exp)], sig), false, 'exp given twice (an array)');
  const other = createLinkSigner({ key: 'x'.repeat(32), ttlS: 600, now: () => now });
  t.equal(other.verify(UUID, String(exp), sig), false, 'another key');
  now = new Date(NOW.getTime() + 599_000);
  t.equal(signer.verify(UUID, String(exp), sig), true, 'one second before expiry');
  now = new Date(NOW.getTime() + 600_000);
  t.equal(signer.verify(UUID, String(exp), sig), false, 'at expiry');
});

t.test('without a configured key, each signer has its own random key', async (t) => {
  const a = createLinkSigner({ key: undefined, ttlS: 600, now: () => NOW });
  const b = createLinkSigner({ key: undefined, ttlS: 600, now: () => NOW });
  const { exp, sig } = a.sign(UUID);
  t.equal(a.verify(UUID, String(exp), sig), true);
  t.equal(b.verify(UUID, String(exp), sig), false, 'a restarted or other instance cannot verify');
});
