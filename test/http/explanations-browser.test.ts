/**
 * The explanation page in a real headless Chromium: it renders, the chart is drawn, nothing is fetched
 * but the page itself, nothing is logged as an error (a CSP violation would be), and a screenshot shows
 * the bars. Needs /usr/bin/chromium (Debian's package; playwright never downloads a browser here):
 * without it the test is skipped with a message, except under CI=true, where it fails.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import t from 'tap';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { COLOURS } from '../../src/explanation-pages/waterfall.js';
import { buildTestApp, tempDir } from '../helpers/app.js';
import { HIGH_RISK, KNEE_OA_URL, kneeOaCall } from '../helpers/knee-oa-call.js';
import { readPng } from '../helpers/png.js';

const CHROMIUM = '/usr/bin/chromium';
const VIEWPORT = { width: 1000, height: 1800 };
const hex = (colour: string) => Number.parseInt(colour.slice(1), 16);

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(`${CHROMIUM} is missing: the browser test cannot run under CI`);
  else {
    const reason = `${CHROMIUM} is not installed (apt-get install chromium)`;
    console.error(`browser test skipped: ${reason}`);
    t.test('the explanation page renders in Chromium', { skip: reason }, async () => {});
  }
} else {
  t.test('the explanation page renders in Chromium: chart, no error, no other request', async (t) => {
    const { app } = await buildTestApp({ explanationKey: 'b'.repeat(32) });
    t.teardown(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const call = await app.inject({ method: 'POST', url: KNEE_OA_URL, payload: kneeOaCall(HIGH_RISK) });
    t.equal(call.statusCode, 200);
    const card = call.json().cards[0];
    const model = card.extension[EXPLANATION_EXTENSION].model;
    const link = new URL(card.links[0].url);
    const url = `http://127.0.0.1:${port}${link.pathname}${link.search}`;

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage({ viewport: VIEWPORT });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    const response = await page.goto(url, { waitUntil: 'load' });
    t.equal(response?.status(), 200);
    t.equal(response?.headers()['content-security-policy']?.startsWith("default-src 'none'"), true);

    const svg = await page.locator('svg.waterfall').boundingBox();
    t.ok(svg && svg.width > 700 && svg.height > 100, `the chart has a size: ${JSON.stringify(svg)}`);
    t.equal(await page.locator('svg.waterfall rect.bar.contribution').count(), model.contributions.length);
    const largest = await page.locator('svg.waterfall rect.bar.contribution').first().boundingBox();
    t.ok(largest && largest.width > 5, 'the largest contribution is a visible bar');
    t.match(await page.locator('h1').innerText(), /^Explanation of the estimate: Knee OA progression/);

    const dir = tempDir('cds-screenshot-');
    const file = join(dir, 'explanation.png');
    await page.screenshot({ path: file, type: 'png' });
    const png = readPng(readFileSync(file));
    t.same([png.width, png.height], [VIEWPORT.width, VIEWPORT.height]);
    const colours = new Set(png.pixels);
    t.ok(colours.size > 50, `not blank: ${colours.size} distinct colours`);
    t.ok(colours.has(hex(COLOURS.raises)), 'red bars (factors raising the estimate) are painted');
    t.ok(colours.has(hex(COLOURS.total)), 'the baseline and estimate bars are painted');

    t.same(errors, [], 'no console error (a CSP violation would be one)');
    t.same(requests, [url], 'the page fetched nothing else');
  });
}
