// npm run keys -- create --role <admin|collector|approver|viewer> --name "<who>"
//   prints the new key once; only its hash is stored.
// npm run keys -- list
//   id, role, name, created, revoked: never the key.
// npm run keys -- revoke --id <uuid>
//   the key stops working at once, on every API process (keys are looked up per request).
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig } from '../config';
import { createDb } from '../db/client';
import { roles } from '../db/schema';
import { createApiKey, listApiKeys, revokeApiKey } from './auth';

const usage = [
  'usage: npm run keys -- create --role <admin|collector|approver|viewer> --name "<who>"',
  '       npm run keys -- list',
  '       npm run keys -- revoke --id <key id from list>',
].join('\n');

const commands = {
  create: z.object({ role: z.enum(roles), name: z.string().min(1) }),
  list: z.object({}),
  revoke: z.object({ id: z.uuid() }),
};

function parse<T extends z.ZodType>(schema: T, values: unknown): z.infer<T> {
  const args = schema.safeParse(values);
  if (!args.success) throw new Error(args.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n') + '\n' + usage);
  return args.data;
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { role: { type: 'string' }, name: { type: 'string' }, id: { type: 'string' } },
  });
  const command = positionals[0];
  if (command !== 'create' && command !== 'list' && command !== 'revoke') throw new Error(usage);
  const db = await createDb(loadConfig());
  try {
    await db.migrate();
    if (command === 'create') {
      const { key } = await createApiKey(db.db, parse(commands.create, values));
      console.log(key);
    } else if (command === 'list') {
      parse(commands.list, values);
      for (const key of await listApiKeys(db.db)) {
        console.log([key.id, key.role.padEnd(9), key.createdAt.toISOString(), key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active', key.name].join('  '));
      }
    } else {
      const { id } = parse(commands.revoke, values);
      const revoked = await revokeApiKey(db.db, id);
      if (!revoked) throw new Error(`No active key with id ${id} (see npm run keys -- list).`);
      console.log(`revoked ${revoked.id} (${revoked.role}, ${revoked.name})`);
    }
  } finally {
    await db.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
