/**
 * The explanations behind the links, kept in memory on the instance that rendered the card (never in
 * the URL: URLs end up in proxy and browser logs). Bounded: at most `maxEntries`, least recently used
 * out first; an entry expires with its link. A restart forgets everything; another instance knows
 * nothing of it.
 */
import type { Explanation } from '../explain/explain.js';
import type { Language } from '../language.js';

export interface StoredExplanation {
  explanation: Explanation;
  /** The language of the card (the page's default language). */
  language: Language;
  /** The card's summary, as the clinician saw it. */
  summary: string;
  /** When the link expires (unix seconds). */
  exp: number;
}

export interface ExplanationStore {
  put(uuid: string, entry: StoredExplanation): void;
  get(uuid: string): StoredExplanation | undefined;
  readonly size: number;
}

export function createExplanationStore(maxEntries: number, now: () => Date): ExplanationStore {
  const entries = new Map<string, StoredExplanation>();
  const expired = (e: StoredExplanation) => e.exp * 1000 <= now().getTime();
  return {
    put(uuid, entry) {
      entries.delete(uuid);
      entries.set(uuid, entry);
      // Map keeps insertion order: the first keys are the least recently used.
      for (const [key, e] of entries) {
        if (entries.size <= maxEntries && !expired(e)) break;
        entries.delete(key);
      }
    },
    get(uuid) {
      const entry = entries.get(uuid);
      if (!entry) return undefined;
      entries.delete(uuid);
      if (expired(entry)) return undefined;
      entries.set(uuid, entry);
      return entry;
    },
    get size() {
      return entries.size;
    },
  };
}
