/**
 * The languages of the service: every card, suggestion and explanation is written in one of them,
 * chosen per call from Accept-Language (http/service-call.ts), and every text a definition or a
 * manifest carries exists in both.
 *
 * French typography: one convention everywhere, a no-break space (U+00A0) before `:` `;` `?` `!` and
 * inside « ». The Lexique des règles typographiques en usage à l’Imprimerie nationale (2002) asks for
 * a no-break space there (a thin one before `;` `?` `!`); U+00A0 everywhere rather than the narrow
 * U+202F because every EHR font has it: a card is shown in fonts this service does not choose, and a
 * missing glyph would show as a box.
 */

/** Text in both languages every card must support. */
export interface Localized {
  en: string;
  fr: string;
}

/** A language a card can be written in. */
export type Language = keyof Localized;

/**
 * A text a definition may give once for every language (a title quoted as published, a code) or in
 * each language.
 */
export type AnyLanguage = string | Localized;

/** The text of `text` in `lang`. */
export function inLanguage(text: AnyLanguage, lang: Language): string {
  return typeof text === 'string' ? text : text[lang];
}

/** The no-break space of French typography (see the module comment). */
export const NBSP = '\u00a0';

/** `:` as written in `lang` (French: a no-break space before it). */
export function colon(lang: Language): string {
  return lang === 'fr' ? `${NBSP}:` : ':';
}

/** `;` as written in `lang`, ready to join a list: French puts a no-break space before it. */
export function semicolon(lang: Language): string {
  return lang === 'fr' ? `${NBSP}; ` : '; ';
}

/**
 * French typography on a text written with ordinary spaces: the space before `:` `;` `?` `!` and
 * inside « » becomes a no-break space, and a number takes one before `%`. Only spaces already there are changed (a colon in a URL, a
 * time or a markdown table rule has none). English text is returned as is.
 */
export function typeset(text: string, lang: Language): string {
  if (lang !== 'fr') return text;
  return text
    .replace(/ +([:;?!])/g, `${NBSP}$1`)
    .replace(/« +/g, `«${NBSP}`)
    .replace(/ +»/g, `${NBSP}»`)
    .replace(/(\d) ?%/g, `$1${NBSP}%`);
}

/** A decimal number as written in `lang` (French: decimal comma). */
export function decimal(text: string, lang: Language): string {
  return lang === 'fr' ? text.replace(/(\d)\.(\d)/g, '$1,$2') : text;
}
