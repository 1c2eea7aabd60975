// Customer-notice templates: Mustache, as plain text. Kept apart from the sender so the config can check templates
// at load without pulling in the outbox.
import Mustache from 'mustache';

/** What a template may name; anything else stops the config load. */
export const TEMPLATE_VARIABLES = [
  'amount',
  'kind',
  'outcome',
  'note',
  'customer_name',
  'charge',
  'reference',
] as const;

/** The names a template uses that Airlock does not fill, so a typo fails at start rather than in a customer's inbox. */
export function unknownTemplateNames(template: string): string[] {
  const names = new Set<string>();
  const walk = (tokens: unknown[]) => {
    for (const t of tokens as [string, string, number, number, unknown[]?][]) {
      if (t[0] === 'name' || t[0] === '&' || t[0] === '#' || t[0] === '^') names.add(t[1]);
      if (Array.isArray(t[4])) walk(t[4]);
    }
  };
  walk(Mustache.parse(template));
  return [...names].filter((n) => !(TEMPLATE_VARIABLES as readonly string[]).includes(n));
}

/** Renders a plain-text template: nothing is HTML-escaped (the HTML part escapes the whole text once). */
export function renderText(template: string, view: Record<string, string>): string {
  return Mustache.render(template, view, {}, { escape: (s: string) => s });
}
