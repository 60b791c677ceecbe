/**
 * A model card as a web page: the card's markdown (written by the training tool, `models/<id>/
 * model-card.md`) turned into one self-contained HTML page, no script and nothing fetched, so a
 * clinician who follows the link from a card reads a page, not raw markdown.
 *
 * The converter understands exactly what the model cards use: `#` headings, paragraphs, `-` lists,
 * `>` quotes, pipe tables, `**bold**`, `_italic_`, `` `code` `` and `[text](https://…)` links; every
 * other character is escaped, so a card cannot inject markup.
 *
 * Language: the page follows the reader's language. The card itself is shown in that language when the
 * model has a card in it (`modelCard.markdownFr`); otherwise, on a French page, the English card is
 * marked `lang="en"` under a French notice saying so.
 */
import { escapeHtml } from '../analytics/page.js';
import { type Language, typeset } from '../language.js';

const e = escapeHtml;

/** Inline markdown of one line: escape first, then the few inline forms. */
function inline(text: string): string {
  return e(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[\s(])_([^_]+)_(?=$|[\s).,;:])/g, '$1<em>$2</em>')
    .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noreferrer">$1</a>');
}

const cells = (row: string) =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());

/** Markdown (the subset above) to HTML. */
export function markdownToHtml(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '') {
      i += 1;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = heading[1]!.length;
      out.push(`<h${level}>${inline(heading[2]!)}</h${level}>`);
      i += 1;
      continue;
    }
    if (line.startsWith('|')) {
      const rows: string[] = [];
      while (i < lines.length && lines[i]!.startsWith('|')) rows.push(lines[i++]!);
      const [head, separator, ...body] = rows;
      const hasHeader = separator !== undefined && /^\|[\s:|-]+\|$/.test(separator.trim());
      const headCells = hasHeader ? cells(head!) : [];
      const bodyRows = hasHeader ? body : rows;
      const thead = headCells.some((c) => c !== '')
        ? `<thead><tr>${headCells.map((c) => `<th>${inline(c)}</th>`).join('')}</tr></thead>`
        : '';
      const tbody = bodyRows
        .map(
          (r) =>
            `<tr>${cells(r)
              .map((c) => `<td>${inline(c)}</td>`)
              .join('')}</tr>`,
        )
        .join('');
      out.push(`<table>${thead}<tbody>${tbody}</tbody></table>`);
      continue;
    }
    if (line.startsWith('>')) {
      const quoted: string[] = [];
      while (i < lines.length && lines[i]!.startsWith('>')) quoted.push(lines[i++]!.replace(/^>\s?/, ''));
      out.push(`<blockquote>${markdownToHtml(quoted.join('\n'))}</blockquote>`);
      continue;
    }
    if (/^\s*[-*]\s+/.test(line)) {
      const items: string[] = [];
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i]!)) {
        items.push(lines[i++]!.replace(/^\s*[-*]\s+/, ''));
      }
      out.push(`<ul>${items.map((item) => `<li>${inline(item)}</li>`).join('')}</ul>`);
      continue;
    }
    const paragraph: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '' && !/^(#{1,6}\s|\||>|\s*[-*]\s+)/.test(lines[i]!)) {
      paragraph.push(lines[i++]!);
    }
    out.push(`<p>${inline(paragraph.join(' '))}</p>`);
  }
  return out.join('\n');
}

const TEXT = {
  en: {
    title: (name: string) => `Model card: ${name}`,
    notice: '',
    formats: 'Also as',
  },
  fr: {
    title: (name: string) => `Fiche du modèle\u00a0: ${name}`,
    notice:
      'La fiche détaillée de ce modèle n’existe qu’en anglais ; elle est reproduite ci-dessous telle quelle.',
    formats: 'Aussi en',
  },
} as const;

const STYLE = `body{font:15px/1.5 system-ui,sans-serif;color:#1a1a1a;max-width:960px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
blockquote{margin:1em 0;padding:.5em 1em;background:#fff4e5;border-left:4px solid #c77700}code{font-size:13px}
.notice{background:#eef3fb;border-left:4px solid #2f5fa7;padding:.5em 1em}`;

/** The whole page: the card in `lang`'s chrome, with links to the markdown and JSON forms. */
export function renderModelCardPage(
  model: { id: string; title: string; markdown: string; language: Language },
  lang: Language,
): string {
  const text = TEXT[lang];
  const base = `/models/${encodeURIComponent(model.id)}/model-card`;
  const notice = model.language !== lang ? `<p class="notice">${e(text.notice)}</p>` : '';
  return `<!doctype html>
<html lang="${lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(text.title(model.title))}</title><style>${STYLE}</style></head>
<body>
${notice}
<article lang="${model.language}">
${markdownToHtml(typeset(model.markdown, model.language))}
</article>
<p>${e(text.formats)} <a href="${base}?format=markdown&amp;lang=${lang}">markdown</a> · <a href="${base}.json">JSON</a></p>
</body>
</html>
`;
}
