/**
 * Card markdown to HTML the way a CDS client renders `card.detail` (GitHub-flavoured markdown as the
 * CDS Hooks sandbox shows it), for the parts the cards use: paragraphs, `-` lists, `---` rules, pipe
 * tables, `**bold**`, `_italic_`, `` `code` ``, links and backslash escapes. Test-only: the service
 * never renders its own markdown.
 */
import { escapeHtml } from '../../src/analytics/page.js';

const ESCAPED = /\\([\\`*_{}[\]()#+\-.!|<>~])/g;

function inline(text: string): string {
  // Escaped characters are set aside first so that they never start or end an emphasis or a link.
  const kept: string[] = [];
  const held = text.replace(ESCAPED, (_, c: string) => `\u0000${kept.push(c) - 1}\u0000`);
  const html = escapeHtml(held)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[\s(])_([^_]+)_(?=$|[\s).,;:])/g, '$1<em>$2</em>')
    .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2">$1</a>');
  return html.replace(/\u0000(\d+)\u0000/g, (_, i: string) => escapeHtml(kept[Number(i)]!));
}

const cells = (row: string) =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => `<td>${inline(c.trim())}</td>`)
    .join('');

/** The HTML of a card's markdown detail. */
export function renderMarkdown(markdown: string): string {
  return markdown
    .replace(/\r\n?/g, '\n')
    .split(/\n{2,}/)
    .map((block) => {
      const lines = block.split('\n');
      if (lines[0] === '---')
        return `<hr>${lines.length > 1 ? `<p>${inline(lines.slice(1).join(' '))}</p>` : ''}`;
      if (lines.every((l) => l.startsWith('- ')))
        return `<ul>${lines.map((l) => `<li>${inline(l.slice(2))}</li>`).join('')}</ul>`;
      if (lines.every((l) => l.startsWith('|'))) {
        const rows = lines.filter((l) => !/^\|[\s:|-]+\|$/.test(l));
        return `<table>${rows.map((r) => `<tr>${cells(r)}</tr>`).join('')}</table>`;
      }
      return `<p>${inline(lines.join(' '))}</p>`;
    })
    .join('\n');
}
