import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import postgres from 'postgres';
import { createDb, type DbHandle } from '../../db/client';

/**
 * A migrated, empty database for one test file: a fresh database on the PostgreSQL server at
 * DATABASE_URL when it is set (CI runs the suite both ways), else an in-memory PGlite.
 */
export async function createTestDb(): Promise<DbHandle & { dispose(): Promise<void>; url?: string }> {
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
  // DATABASE_POOL_SIZE as a deployment would set it (benchmarks compare pool sizes).
  const handle = await createDb({ DATABASE_URL: url.toString(), DATA_DIR: 'memory://', DATABASE_POOL_SIZE: Number(process.env.DATABASE_POOL_SIZE) || undefined });
  await handle.migrate();
  return {
    ...handle,
    /** The fresh database's own URL, for another process (a benchmark's worker) to reach it. */
    url: url.toString(),
    dispose: async () => {
      await handle.close();
      await dropDatabase(admin, name);
    },
  };
}

/**
 * An empty database behind a real PostgreSQL wire-protocol server, for tests that reach it over
 * TCP (e.g. to cut the connection): a fresh database on DATABASE_URL's server, or else an
 * in-memory PGlite served on a local port. PGlite is one session, so it takes one connection.
 */
export async function createTestDbServer(): Promise<{ host: string; port: number; url(port: number): string; maxConnections: number; dispose(): Promise<void> }> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    const pglite = await PGlite.create();
    const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0, maxConnections: 1 });
    await server.start();
    const port = Number(server.getServerConn().split(':').pop());
    return {
      host: '127.0.0.1',
      port,
      url: (via) => `postgres://postgres@127.0.0.1:${via}/postgres`,
      maxConnections: 1,
      dispose: async () => {
        await server.stop();
        await pglite.close();
      },
    };
  }
  const name = `arrears_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const base = new URL(serverUrl);
  return {
    host: base.hostname,
    port: Number(base.port || 5432),
    url: (via) => {
      const url = new URL(serverUrl);
      url.hostname = '127.0.0.1';
      url.port = String(via);
      url.pathname = `/${name}`;
      return url.toString();
    },
    maxConnections: 5,
    dispose: async () => {
      await dropDatabase(admin, name);
    },
  };
}

/**
 * Drops a test database and ends the admin connection. FORCE cannot end a backend this role does
 * not own: PostgreSQL 15 refuses while an autovacuum worker is in the database ("must be a member
 * of the role whose process is being terminated"), so wait for it to finish and try again.
 */
async function dropDatabase(admin: postgres.Sql, name: string): Promise<void> {
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        return;
      } catch (error) {
        const refused = /must be a member of the role whose process is being terminated/.test((error as Error).message);
        if (!refused || attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    await admin.end();
  }
}
