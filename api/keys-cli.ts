// `npm run keys -- create --role <admin|collector|approver|viewer> --name "<who>"`
// Prints the new key once; only its hash is stored.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig } from '../config';
import { createDb } from '../db/client';
import { roles } from '../db/schema';
import { createApiKey } from './auth';

const argsSchema = z.object({ role: z.enum(roles), name: z.string().min(1) });

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { role: { type: 'string' }, name: { type: 'string' } },
  });
  if (positionals[0] !== 'create') throw new Error('usage: npm run keys -- create --role <admin|collector|approver|viewer> --name "<who>"');
  const args = argsSchema.safeParse(values);
  if (!args.success) throw new Error(args.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n'));
  const db = await createDb(loadConfig());
  try {
    await db.migrate();
    const { key } = await createApiKey(db.db, args.data);
    console.log(key);
  } finally {
    await db.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
