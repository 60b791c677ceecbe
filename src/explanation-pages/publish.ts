/**
 * Publishing and finding explanations: when a model-based card is rendered, its explanation is stored
 * under the card uuid and the card gets a signed link to the page; the page route finds it again only
 * with a genuine, unexpired link.
 */
import { type IssuedCard, withExplanationLink } from '../cards/render.js';
import type { Explanation } from '../explain/explain.js';
import type { LinkSigner } from './link.js';
import type { ExplanationStore, StoredExplanation } from './store.js';
import type { Language } from '../language.js';

export interface ExplanationPublisher {
  /** Stores the explanation of a card and returns the absolute URL of its page. */
  publish(cardUuid: string, explanation: Explanation, summary: string, language: Language): string;
}

export interface Explanations extends ExplanationPublisher {
  /** The explanation behind a link, or undefined whatever the reason (forged, expired, forgotten). */
  find(uuid: string, exp: unknown, sig: unknown): StoredExplanation | undefined;
}

/** Where the service serves the explanation page of a card. */
export function explanationPath(uuid: string): string {
  return `/explanations/${encodeURIComponent(uuid)}`;
}

export function createExplanations(deps: {
  signer: LinkSigner;
  store: ExplanationStore;
  publicUrl: string;
}): Explanations {
  const base = deps.publicUrl.replace(/\/+$/, '');
  return {
    publish(cardUuid, explanation, summary, language) {
      const { exp, sig } = deps.signer.sign(cardUuid);
      deps.store.put(cardUuid, { explanation, summary, language, exp });
      return `${base}${explanationPath(cardUuid)}?exp=${exp}&sig=${sig}`;
    },
    find(uuid, exp, sig) {
      return deps.signer.verify(uuid, exp, sig) ? deps.store.get(uuid) : undefined;
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
