/**
 * The languages of the service: every card, suggestion and explanation is written in one of them,
 * chosen per call from Accept-Language (http/service-call.ts), and every text a definition or a
 * manifest carries exists in both.
 */

/** Text in both languages every card must support. */
export interface Localized {
  en: string;
  fr: string;
}

/** A language a card can be written in. */
export type Language = keyof Localized;
