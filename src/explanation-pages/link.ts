/**
 * Signed links to explanation pages. A link carries the card uuid, an expiry (unix seconds) and
 * `sig` = base64url(HMAC-SHA256(key, "<uuid>.<exp>")): the signature is the only credential, so the
 * page needs no login and a link cannot be forged, extended or moved to another card. Verification
 * compares in constant time and says only yes or no.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface LinkSigner {
  /** The expiry and signature of a new link to the explanation of `uuid`. */
  sign(uuid: string): { exp: number; sig: string };
  /** Whether a link is genuine and not expired (`exp`, `sig` as they came in the query). */
  verify(uuid: string, exp: unknown, sig: unknown): boolean;
}

export interface SignerOptions {
  /** The HMAC key; undefined: a random key for this process only. */
  key: string | undefined;
  ttlS: number;
  now: () => Date;
}

/** An HMAC-SHA256 is 32 bytes: 43 base64url characters without padding. */
const SIG = /^[A-Za-z0-9_-]{43}$/;
const EXP = /^[1-9][0-9]{0,11}$/;

function mac(key: Buffer | string, uuid: string, exp: number): Buffer {
  return createHmac('sha256', key).update(`${uuid}.${exp}`, 'utf8').digest();
}

export function createLinkSigner(options: SignerOptions): LinkSigner {
  const key = options.key ?? randomBytes(32);
  const nowS = () => Math.floor(options.now().getTime() / 1000);
  return {
    sign(uuid) {
      const exp = nowS() + options.ttlS;
      return { exp, sig: mac(key, uuid, exp).toString('base64url') };
    },
    verify(uuid, exp, sig) {
      if (typeof exp !== 'string' || typeof sig !== 'string' || !EXP.test(exp) || !SIG.test(sig))
        return false;
      const expS = Number(exp);
      const given = Buffer.from(sig, 'base64url');
      // Checked even when expired, so the time taken does not tell an expired link from a forged one.
      const genuine = given.length === 32 && timingSafeEqual(given, mac(key, uuid, expS));
      return genuine && expS > nowS();
    },
  };
}
