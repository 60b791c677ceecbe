/**
 * GET /models/{id}/model-card by content negotiation: an HTML page to a browser (in its language),
 * markdown to a tool or by default, JSON on request; and the markdown converter escapes everything.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import t from 'tap';
import { markdownToHtml, renderModelCardPage } from '../../src/explanation-pages/model-card-page.js';
import { negotiateFormat } from '../../src/http/models.js';
import { buildTestApp } from '../helpers/app.js';

const URL = '/models/knee-oa-progression/model-card';
const CHROMIUM = '/usr/bin/chromium';
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

t.test('negotiation: format first, then Accept by quality, markdown by default', async (t) => {
  t.equal(negotiateFormat(BROWSER_ACCEPT, undefined), 'html');
  t.equal(negotiateFormat('application/json', undefined), 'json');
  t.equal(negotiateFormat('text/markdown, text/html;q=0.5', undefined), 'markdown');
  t.equal(negotiateFormat('text/html;q=0.2, application/json;q=0.4', undefined), 'json');
  t.equal(negotiateFormat('*/*', undefined), 'markdown');
  t.equal(negotiateFormat(undefined, undefined), 'markdown');
  t.equal(negotiateFormat('image/png', undefined), 'markdown');
  t.equal(negotiateFormat('text/html;q=0', undefined), 'markdown');
  t.equal(negotiateFormat('application/json', 'html'), 'html');
  t.equal(negotiateFormat(BROWSER_ACCEPT, 'markdown'), 'markdown');
  t.equal(negotiateFormat(BROWSER_ACCEPT, 'pdf'), 'html', 'an unknown format is ignored');
});

t.test('a browser gets an HTML page, in English or in French', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const en = await app.inject({ method: 'GET', url: URL, headers: { accept: BROWSER_ACCEPT } });
  t.equal(en.statusCode, 200);
  t.equal(en.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(en.headers['content-language'], 'en');
  t.equal(en.headers.vary, 'Accept, Accept-Language');
  t.match(en.headers['content-security-policy'], /^default-src 'none'/);
  t.match(en.body, /^<!doctype html>\n<html lang="en">/);
  t.match(en.body, /<title>Model card: Knee OA progression \(demonstration model\)<\/title>/);
  t.match(en.body, /<h1>Knee OA progression \(demonstration model\) — model card<\/h1>/);
  t.match(en.body, /<blockquote><p><strong>Demonstration model trained on simulated data\./);
  t.match(en.body, /<table><thead>/);
  t.match(en.body, /<td>Model id<\/td><td><code>knee-oa-progression<\/code><\/td>/);
  t.notMatch(en.body, /\*\*|\| ---|<script/, 'no raw markdown, no script');
  t.notMatch(en.body, /class="notice"/, 'no notice on the English page');

  const fr = await app.inject({
    method: 'GET',
    url: URL,
    headers: { accept: BROWSER_ACCEPT, 'accept-language': 'fr-FR,fr;q=0.9,en;q=0.5' },
  });
  t.equal(fr.headers['content-language'], 'fr');
  t.match(fr.body, /<html lang="fr">/);
  t.match(
    fr.body,
    /<title>Fiche du modèle\u00a0: Progression de la gonarthrose \(modèle de démonstration\)<\/title>/,
  );
  // The model has a French card (modelCard.markdownFr): the whole page is French, no notice.
  t.notMatch(fr.body, /class="notice"/);
  t.match(fr.body, /<article lang="fr">/);
  t.match(fr.body, /<h2>Usage prévu<\/h2>/);
  t.notMatch(fr.body, /Intended use/);
  t.match(
    fr.body,
    /Aussi en <a href="\/models\/knee-oa-progression\/model-card\?format=markdown&amp;lang=fr">markdown<\/a>/,
  );
  const frMarkdown = await app.inject({ method: 'GET', url: `${URL}?format=markdown&lang=fr` });
  t.equal(frMarkdown.headers['content-language'], 'fr');
  t.match(frMarkdown.body, /^# Progression de la gonarthrose \(modèle de démonstration\) — fiche du modèle/);
  // A model without a French card: the English card under a French notice, marked as English.
  const fallback = renderModelCardPage({ id: 'x', title: 'Modèle x', markdown: '# X', language: 'en' }, 'fr');
  t.match(fallback, /<p class="notice">La fiche détaillée de ce modèle n’existe qu’en anglais/);
  t.match(fallback, /<article lang="en">/, 'the English text is marked as such');

  const forced = await app.inject({ method: 'GET', url: `${URL}?format=html&lang=fr` });
  t.equal(forced.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(forced.headers['content-language'], 'fr');
});

t.test('markdown by default and on request, JSON on request', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const plain = await app.inject({ method: 'GET', url: URL });
  t.equal(plain.headers['content-type'], 'text/markdown; charset=utf-8');
  t.match(plain.body, /^# Knee OA progression/);
  const md = await app.inject({ method: 'GET', url: URL, headers: { accept: 'text/markdown' } });
  t.equal(md.body, plain.body);
  const viaQuery = await app.inject({
    method: 'GET',
    url: `${URL}?format=markdown`,
    headers: { accept: BROWSER_ACCEPT },
  });
  t.equal(viaQuery.body, plain.body);
  const json = await app.inject({ method: 'GET', url: URL, headers: { accept: 'application/json' } });
  t.equal(json.headers['content-type'], 'application/json; charset=utf-8');
  const file = await app.inject({ method: 'GET', url: `${URL}.json` });
  t.same(json.json(), file.json());
  t.equal(json.json().id, 'knee-oa-progression');
  const missing = await app.inject({
    method: 'GET',
    url: '/models/nope/model-card',
    headers: { accept: BROWSER_ACCEPT },
  });
  t.equal(missing.statusCode, 404);
});

t.test('the converter escapes everything it does not convert', async (t) => {
  t.equal(
    markdownToHtml(
      '# A <b>title</b>\n\nText with **bold**, _it_, `x<y` and [a link](https://example.org/a?b=1&c=2).',
    ),
    '<h1>A &lt;b&gt;title&lt;/b&gt;</h1>\n<p>Text with <strong>bold</strong>, <em>it</em>, <code>x&lt;y</code> and <a href="https://example.org/a?b=1&amp;c=2" rel="noreferrer">a link</a>.</p>',
  );
  t.equal(markdownToHtml('[x](javascript:alert(1))'), '<p>[x](javascript:alert(1))</p>', 'no other scheme');
  t.equal(markdownToHtml('- one\n- <two>'), '<ul><li>one</li><li>&lt;two&gt;</li></ul>');
  t.equal(
    markdownToHtml('| a | b |\n| - | - |\n| 1 | "2" |'),
    '<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>&quot;2&quot;</td></tr></tbody></table>',
  );
  t.equal(markdownToHtml('> **Note**\n> line'), '<blockquote><p><strong>Note</strong> line</p></blockquote>');
});

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(`${CHROMIUM} is missing: the browser test cannot run under CI`);
  else
    t.test(
      'the model card opens as a page in Chromium',
      { skip: `${CHROMIUM} is not installed` },
      async () => {},
    );
} else {
  t.test('the model card opens as a page in Chromium, in the browser language', async (t) => {
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage({ locale: 'fr-FR' });
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const response = await page.goto(`http://127.0.0.1:${port}${URL}`);
    t.equal(response?.headers()['content-type'], 'text/html; charset=utf-8');
    t.equal(await page.getAttribute('html', 'lang'), 'fr');
    t.match(await page.title(), /^Fiche du modèle\u00a0: Progression de la gonarthrose/);
    t.ok((await page.locator('table').count()) >= 3, 'the tables are tables');
    t.same(errors, []);
  });
}
