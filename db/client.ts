import path from 'node:path';
import { mkdirSync } from 'node:fs';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { PGlite } from '@electric-sql/pglite';
import * as schema from './schema';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export type DbHandle = {
  db: Database;
  /** "postgres" (a server at DATABASE_URL) or "pglite" (embedded, in-process). */
  kind: 'postgres' | 'pglite';
  migrate(): Promise<void>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
};

export type DbConfig = {
  /** postgres:// URL of a PostgreSQL server; without it an embedded PGlite is used. */
  DATABASE_URL?: string;
  /** Where the embedded database keeps its files; `memory://` for a throwaway one. */
  DATA_DIR: string;
};

const migrationsFolder = path.join(__dirname, 'migrations');

/**
 * The one way to get a database: PostgreSQL through postgres.js when DATABASE_URL is set,
 * otherwise PGlite (real Postgres compiled to WASM) in DATA_DIR/pglite. PGlite serves one
 * process only, so the API and the worker share it only inside the one-command dev stack.
 */
export async function createDb(config: DbConfig): Promise<DbHandle> {
  if (config.DATABASE_URL) {
    const client = postgres(config.DATABASE_URL, { max: 10, onnotice: () => {} });
    const db = drizzlePostgres(client, { schema }) as unknown as Database;
    return {
      db,
      kind: 'postgres',
      migrate: () => migratePostgres(drizzlePostgres(client, { schema }), { migrationsFolder }),
      ping: async () => {
        await db.execute(sql`select 1`);
      },
      close: () => client.end({ timeout: 5 }),
    };
  }
  const dataDir = config.DATA_DIR === 'memory://' ? undefined : path.resolve(config.DATA_DIR, 'pglite');
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const client = new PGlite(dataDir);
  await client.waitReady;
  const pglite = drizzlePglite(client, { schema });
  const db = pglite as unknown as Database;
  return {
    db,
    kind: 'pglite',
    migrate: () => migratePglite(pglite, { migrationsFolder }),
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: () => client.close(),
  };
}
