import type { Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { allSearchAttributeKeys } from '../workflows/messages';

/**
 * Registers the collection search attributes in the namespace when they are missing, so a
 * fresh cluster works without a manual `temporal operator search-attribute create`.
 * Returns the names it added.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set([
    ...Object.keys(existing.customAttributes ?? {}),
    ...Object.keys(existing.systemAttributes ?? {}),
  ]);
  const missing = allSearchAttributeKeys.filter((key) => !known.has(key.name));
  if (missing.length === 0) return [];
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!]),
    ),
  });
  return missing.map((key) => key.name);
}
