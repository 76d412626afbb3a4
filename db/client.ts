import path from 'node:path';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Connections in the PostgreSQL pool (default 10). */
  DATABASE_POOL_SIZE?: number;
  /** Overrides DATABASE_POOL_SIZE (tests that need a small pool). */
  poolSize?: number;
};

const migrationsFolder = path.join(__dirname, 'migrations');

/**
 * The one way to get a database: PostgreSQL through postgres.js when DATABASE_URL is set,
 * otherwise PGlite (real Postgres compiled to WASM) in DATA_DIR/pglite. PGlite serves one
 * process only, so the API and the worker share it only inside the one-command dev stack.
 */
export async function createDb(config: DbConfig): Promise<DbHandle> {
  if (config.DATABASE_URL) {
    // A short connect timeout: a request waiting on a dead database should fail fast with 503.
    const client = postgres(config.DATABASE_URL, { max: config.poolSize ?? config.DATABASE_POOL_SIZE ?? 10, connect_timeout: 5, onnotice: () => {} });
    const db = drizzlePostgres(client, { schema }) as unknown as Database;
    return {
      db,
      kind: 'postgres',
      migrate: () => migrateWithLock(config.DATABASE_URL!),
      ping: async () => {
        await db.execute(sql`select 1`);
      },
      close: () => client.end({ timeout: 5 }),
    };
  }
  const dataDir = config.DATA_DIR === 'memory://' ? undefined : path.resolve(config.DATA_DIR, 'pglite');
  const releaseLock = dataDir ? lockDataDir(dataDir) : () => {};
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
    close: async () => {
      await client.close();
      releaseLock();
    },
  };
}

const connectionErrorCodes = new Set([
  // postgres.js and Node's sockets
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  // PostgreSQL: shutting down, starting up, too many connections
  '57P01', '57P02', '57P03', '53300',
]);

/**
 * Whether an error (or its cause: drizzle wraps driver errors) means the database could not be
 * reached, as opposed to a query it refused. The API answers these with 503 so callers retry.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (connectionErrorCodes.has(code) || code.startsWith('08'))) return true;
    if (e instanceof Error && /PGlite is closed/i.test(e.message)) return true;
  }
  return false;
}

// Any constant works; it only has to be the same in every Arrears process.
const MIGRATION_LOCK_ID = 4_127_001;

/**
 * Applies the migrations on one dedicated connection holding an advisory lock, so a worker
 * and an API starting together on a fresh database do not both try to create the tables.
 */
async function migrateWithLock(url: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
    await migratePostgres(drizzlePostgres(client), { migrationsFolder });
    await client`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * PGlite serves one process: two processes on the same folder would corrupt it. A lock file
 * with the owner's pid makes the second one stop with a clear message instead.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, 'arrears.lock');
  const owner = existsSync(lockFile) ? Number(readFileSync(lockFile, 'utf8')) : undefined;
  if (owner && owner !== process.pid && processIsAlive(owner)) {
    throw new Error(
      `The embedded database in ${dataDir} is in use by process ${owner} (is \`npm run dev\` running?). ` +
        'Stop it first, or set DATABASE_URL to a PostgreSQL server that several processes can share.',
    );
  }
  writeFileSync(lockFile, String(process.pid));
  return () => rmSync(lockFile, { force: true });
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * postgres.js 3.4.9 (the newest) can throw from a deferred write after its socket closed:
 * `TypeError: Cannot read properties of null (reading 'write')` at `nextWrite`
 * (porsager/postgres#1154, #1208; fixes proposed, not released). It is thrown from a
 * setImmediate, so no caller can catch it, and it kills the process on any database blip:
 * the fault test for a 30 s database outage lost its worker this way. The query it belonged
 * to has failed or times out and is retried like any other database error, so the process
 * notes it and carries on. Every other uncaught exception still ends the process, as Node's
 * default does. For the entry points only (worker, API, dev stack): they own the process.
 */
export function surviveClosedSocketWrites(log: (message: string) => void = console.warn): void {
  process.on('uncaughtException', (err) => {
    if (err instanceof TypeError && /reading 'write'/.test(err.message) && /nextWrite[\s\S]*postgres/.test(err.stack ?? '')) {
      log(`database connection closed under a pending write (postgres.js); carrying on: ${err.message}`);
      return;
    }
    console.error(err);
    process.exit(1);
  });
}
