/** "2026-11-27 14:05 UTC": instants on pages are UTC, like everything Arrears stores. */
export function formatInstant(at: Date | string | null | undefined): string {
  if (!at) return '—';
  const date = typeof at === 'string' ? new Date(at) : at;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** "agency_referral" → "Agency referral". */
export function kindLabel(kind: string): string {
  const words = kind.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}
