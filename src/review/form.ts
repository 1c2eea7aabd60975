/** One field of a posted form (or a query string) as a string; missing, repeated or not text reads as ''. */
export function field(body: unknown, name: string): string {
  if (!body || typeof body !== 'object') return '';
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : '';
}
