/**
 * Explanation pages from any instance (issue 16 §10): the explanation is kept in the audit store with
 * its expiry, so a link issued by one instance opens on another sharing the store (SQLite file and
 * PostgreSQL). Before, 557/557 such clicks got the 404 page.
 */
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { HIGH_RISK, kneeOaCall } from '../helpers/knee-oa-call.js';
import { eachStore } from '../helpers/stores.js';

const KEY = 'explanation-key-shared-by-instances-0123';
const SERVICE = '/cds-services/knee-oa-progression';

await eachStore(t, async (t, kind) => {
  t.test('a link issued by one instance opens on another sharing the store', async (t) => {
    const opened = await kind.open();
    const second = await opened.another();
    const one = await buildTestApp({ explanationKey: KEY }, { store: opened.store });
    const two = await buildTestApp({ explanationKey: KEY }, { store: second });
    t.teardown(async () => {
      await one.app.close();
      await two.app.close();
    });
    const res = await one.app.inject({ method: 'POST', url: SERVICE, payload: kneeOaCall(HIGH_RISK) });
    t.equal(res.statusCode, 200, res.body);
    const links = (res.json().cards as { links?: { url: string }[] }[])
      .flatMap((c) => c.links ?? [])
      .map((l) => l.url)
      .filter((u) => u.includes('/explanations/'));
    t.ok(links.length > 0, 'a model-based card with an explanation link');
    const path = new URL(links[0]!).pathname + new URL(links[0]!).search;
    const onTwo = await two.app.inject({ method: 'GET', url: path });
    t.equal(onTwo.statusCode, 200, 'served by the other instance');
    t.match(onTwo.body, /<svg/, 'the page with its chart');
    const onOne = await one.app.inject({ method: 'GET', url: path });
    t.equal(onTwo.body, onOne.body, 'the same page on both');
    // The signature still binds the link: a tampered one is the 404 page on any instance.
    const forged = await two.app.inject({ method: 'GET', url: path.replace(/sig=./, 'sig=A') });
    t.equal(forged.statusCode, 404);
    const rows = await opened.raw('SELECT card_uuid, expires_at FROM explanation_page');
    t.equal(rows.length, links.length, 'one stored page per link');
  });
});
