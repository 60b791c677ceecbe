/**
 * Small lexicons of frequent words, one per language, to catch a text of the other language on a card
 * or a page (test/cards/language.test.ts; the browser test of the cards may reuse them). Only words
 * that are not also words of the other language: "patient", "date", "points", "population", "source",
 * "version", "non" (English "non-steroidal") and "on" are left out.
 */
import type { Language } from '../../src/language.js';

export const LEXICON: Readonly<Record<Language, ReadonlySet<string>>> = {
  en: new Set([
    'the',
    'with',
    'and',
    'not',
    'risk',
    'left',
    'right',
    'foot',
    'of',
    'this',
    'is',
    'for',
    'when',
    'recorded',
    'estimate',
    'model',
    'card',
    'checklist',
    'referral',
    'threshold',
    'below',
    'above',
    'yes',
    'no',
    'true',
    'false',
    'months',
    'years',
    'weeks',
    'smaller',
    'factors',
    'listed',
    'avoid',
    'consider',
    'tablet',
    'intended',
    'use',
    'training',
    'data',
    'limits',
  ]),
  fr: new Set([
    'le',
    'la',
    'les',
    'des',
    'du',
    'avec',
    'risque',
    'gauche',
    'droite',
    'pied',
    'pas',
    'une',
    'est',
    'pour',
    'sous',
    'seuil',
    'estimé',
    'modèle',
    'fiche',
    'oui',
    'mois',
    'ans',
    'semaines',
    'données',
    'renseigné',
    'éviter',
    'envisager',
    'comprimé',
    'prévu',
    'limites',
    'ou',
    'aucun',
  ]),
};

/** The words of `text` (letters, apostrophes inside words), lower case. */
export function words(text: string): string[] {
  return (text.toLowerCase().match(/\p{L}+(?:[’']\p{L}+)*/gu) ?? []).flatMap((w) =>
    // French elisions: "l’estimation" is "l’" + "estimation".
    w.split(/[’']/).filter(Boolean),
  );
}

/**
 * The words of the other language found in `text` (a text meant to be in `lang`), with what is not
 * prose removed first: URLs, markdown link targets and code spans.
 */
export function foreignWords(text: string, lang: Language): string[] {
  const other = LEXICON[lang === 'en' ? 'fr' : 'en'];
  const prose = text
    .replace(/\]\([^)]*\)/g, ']')
    .replace(/https?:\/\/[^\s"<>)]+/g, ' ')
    .replace(/`[^`]*`/g, ' ');
  return [...new Set(words(prose).filter((w) => other.has(w)))];
}

/**
 * French punctuation written without the no-break space before it (`:` `;` `?` `!` after a letter, a
 * closing bracket, emphasis or an ordinary space). Digits are allowed on both sides ("1998;134:1563").
 */
export function frenchSpacingErrors(text: string): string[] {
  const prose = text.replace(/https?:\/\/[^\s"<>)]+/g, ' ').replace(/`[^`]*`/g, ' ');
  return [...prose.matchAll(/.{0,20}[\p{L})*_ ][:;?!].{0,10}/gu)].map((m) => m[0]);
}

/** The prose of an HTML page: no style, no code, no tags; the few entities the pages use decoded. */
export function htmlText(html: string): string {
  return html
    .replace(/<style[\s\S]*?<\/style>/g, ' ')
    .replace(/<code>[\s\S]*?<\/code>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}
