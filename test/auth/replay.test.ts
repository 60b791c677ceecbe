import t from 'tap';
import { createMemoryReplayCache, ReplayCacheFullError, replayKey } from '../../src/auth/replay.js';
import { NOW } from '../helpers/app.js';

const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

function clock(start = NOW) {
  let current = start;
  return {
    now: () => current,
    advance: (seconds: number) => {
      current = new Date(current.getTime() + seconds * 1000);
    },
  };
}

t.test('the key joins issuer and jti with a NUL, so no pair collides with another', async (t) => {
  t.equal(replayKey('https://ehr.example.org', 'abc'), 'https://ehr.example.org\u0000abc');
  t.not(replayKey('a', 'b\u0000c'), replayKey('a\u0000b', 'c') + 'x');
  t.not(replayKey('https://a', 'bc'), replayKey('https://ab', 'c'));
});

t.test('a key is accepted once, refused while it lives, and accepted again once expired', async (t) => {
  const c = clock();
  const cache = createMemoryReplayCache({ maxEntries: 10, now: c.now });
  t.equal(await cache.claim('k', at(300)), true);
  t.equal(await cache.claim('k', at(300)), false);
  t.equal(await cache.claim('other', at(300)), true);
  c.advance(299);
  t.equal(await cache.claim('k', at(600)), false, 'one second before expiry: still a replay');
  c.advance(1);
  t.equal(await cache.claim('k', at(600)), true, 'at expiry the key is forgotten');
});

t.test('expired keys are evicted, so the cache stays bounded', async (t) => {
  const c = clock();
  const cache = createMemoryReplayCache({ maxEntries: 100, now: c.now });
  for (let i = 0; i < 50; i++) await cache.claim(`a${i}`, at(60));
  t.equal(cache.size, 50);
  c.advance(61);
  await cache.claim('b', at(120));
  t.equal(cache.size, 1, 'the expired front of the cache was dropped');
});

t.test('when full of live keys it refuses new ones rather than forget a live one', async (t) => {
  const c = clock();
  const cache = createMemoryReplayCache({ maxEntries: 3, now: c.now });
  // Out of expiry order: the first key lives longest, so only a full sweep finds the expired ones.
  await cache.claim('long', at(600));
  await cache.claim('short1', at(10));
  await cache.claim('short2', at(10));
  await t.rejects(cache.claim('new', at(600)), ReplayCacheFullError);
  await t.rejects(cache.claim('new', at(600)), {
    message: 'The JWT replay cache holds 3 unexpired token ids and cannot take more',
  });
  t.equal(await cache.claim('long', at(600)), false, 'a live key is still known while full');
  c.advance(11);
  t.equal(await cache.claim('new', at(600)), true, 'the sweep made room');
  t.equal(cache.size, 2);
  t.equal(await cache.claim('long', at(600)), false, 'the live key survived the sweep');
});

t.test('a key inserted after a sweep with an earlier expiry is found by the next sweep', async (t) => {
  const c = clock();
  const cache = createMemoryReplayCache({ maxEntries: 4, now: c.now });
  await cache.claim('long', at(600));
  await cache.claim('a', at(10));
  await cache.claim('b', at(10));
  await cache.claim('mid', at(100));
  c.advance(11);
  // Full: the sweep drops a and b; the earliest live expiry is then mid's, at 100 s.
  t.equal(await cache.claim('n', at(700)), true);
  t.equal(await cache.claim('q', at(20)), true, 'not full: no sweep, but q expires before mid');
  t.equal(cache.size, 4);
  c.advance(10);
  t.equal(await cache.claim('r', at(700)), true, 'q expired at 20 s: swept although mid lives on');
  t.equal(cache.size, 4);
  t.equal(await cache.claim('mid', at(100)), false);
});
