/**
 * Publishing and finding explanations: when a model-based card is rendered, its explanation is stored
 * under the card uuid and the card gets a signed link to the page; the page route finds it again only
 * with a genuine, unexpired link.
 */
import { type IssuedCard, withExplanationLink } from '../cards/render.js';
import type { Explanation } from '../explain/explain.js';
import type { LinkSigner } from './link.js';
import type { ExplanationPageRow } from '../audit/store.js';
import type { ExplanationStore, StoredExplanation } from './store.js';
import type { Language } from '../language.js';

export interface ExplanationPublisher {
  /** Stores the explanation of a card and returns the absolute URL of its page. */
  publish(cardUuid: string, explanation: Explanation, summary: string, language: Language): string;
  /** The page of a card published here, as the audit store keeps it for the other instances. */
  pageOf?(cardUuid: string): ExplanationPageRow | undefined;
}

export interface Explanations extends ExplanationPublisher {
  /**
   * The explanation behind a link, or undefined whatever the reason (forged, expired, unknown): from
   * this instance's memory, else from the shared store (published by any instance).
   */
  find(uuid: string, exp: unknown, sig: unknown): Promise<StoredExplanation | undefined>;
}

/** A page's content kept in the shared store, by card uuid (null: none, or expired at `nowS`). */
export type SharedPages = (uuid: string, nowS: number) => Promise<string | null>;

/** Where the service serves the explanation page of a card. */
export function explanationPath(uuid: string): string {
  return `/explanations/${encodeURIComponent(uuid)}`;
}

export function createExplanations(deps: {
  signer: LinkSigner;
  store: ExplanationStore;
  publicUrl: string;
  /** The audit store's pages (every instance's); none: this instance's memory only. */
  shared?: SharedPages;
  now?: () => Date;
}): Explanations {
  const base = deps.publicUrl.replace(/\/+$/, '');
  const nowS = () => Math.floor((deps.now?.() ?? new Date()).getTime() / 1000);
  return {
    publish(cardUuid, explanation, summary, language) {
      const { exp, sig } = deps.signer.sign(cardUuid);
      deps.store.put(cardUuid, { explanation, summary, language, exp });
      return `${base}${explanationPath(cardUuid)}?exp=${exp}&sig=${sig}`;
    },
    pageOf(cardUuid) {
      const stored = deps.store.get(cardUuid);
      return stored && { uuid: cardUuid, exp: stored.exp, content: JSON.stringify(stored) };
    },
    async find(uuid, exp, sig) {
      if (!deps.signer.verify(uuid, exp, sig)) return undefined;
      const local = deps.store.get(uuid);
      if (local || !deps.shared) return local;
      const content = await deps.shared(uuid, nowS());
      if (content === null) return undefined;
      const stored = JSON.parse(content) as StoredExplanation;
      deps.store.put(uuid, stored);
      return stored;
    },
  };
}

/**
 * The publish stage: stores the explanation of each card about a model and adds the signed link to its
 * page. Without a publisher the cards are left as they are (no page, no link).
 */
export function publishExplanations(
  issued: readonly IssuedCard[],
  publisher: ExplanationPublisher | undefined,
  language: Language,
): IssuedCard[] {
  return issued.map((item) => {
    if (!publisher || item.model === undefined) return item;
    const url = publisher.publish(item.card.uuid!, item.explanation, item.card.summary, language);
    return { ...item, card: withExplanationLink(item.card, url, language) };
  });
}
