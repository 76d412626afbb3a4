import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { createDb, type DbHandle } from '../../db/client';

/**
 * A migrated, empty database for one test file: a fresh database on the PostgreSQL server at
 * DATABASE_URL when it is set (CI runs the suite both ways), else an in-memory PGlite.
 */
export async function createTestDb(): Promise<DbHandle & { dispose(): Promise<void> }> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    const handle = await createDb({ DATA_DIR: 'memory://' });
    await handle.migrate();
    return { ...handle, dispose: () => handle.close() };
  }
  const name = `arrears_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await createDb({ DATABASE_URL: url.toString(), DATA_DIR: 'memory://' });
  await handle.migrate();
  return {
    ...handle,
    dispose: async () => {
      await handle.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
