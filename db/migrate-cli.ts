// `npm run db:migrate`: applies the committed migrations to DATABASE_URL (or the embedded database).
import { loadConfig } from '../config';
import { createDb } from './client';

async function main(): Promise<void> {
  const config = loadConfig();
  const handle = await createDb(config);
  try {
    await handle.migrate();
    console.log(`migrations applied (${handle.kind})`);
  } finally {
    await handle.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
