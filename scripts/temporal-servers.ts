/**
 * Makes the two Temporal servers available without relying on the SDK's download, which
 * needs the open internet:
 *   - the Temporal CLI (its dev server runs the one-command stack and the end-to-end tests);
 *   - the time-skipping test server (workflow tests that walk months in seconds).
 *
 * For each, in order:
 *   1. an explicitly configured path (TEMPORAL_CLI_PATH, TEMPORAL_TEST_SERVER_PATH) wins;
 *   2. a copy already built into the cache (ARREARS_CACHE_DIR, default ~/.cache/arrears);
 *   3. build it into that cache from registries these machines reach: the CLI with
 *      `go install` from the Go module proxy, the test server with Maven from Maven Central;
 *   4. otherwise leave it to the SDK's own download (machines with internet).
 *
 * `tsx scripts/temporal-servers.ts ensure` runs steps 1-3 (CI and `npm test` call it);
 * `resolveServerExecutable()` gives what to hand to @temporalio/testing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEST_SERVER_VERSION = '1.38.0';
const SLF4J_NOP_VERSION = '1.7.36';

export type ServerKind = 'cli' | 'test-server';

export type ServerExecutable =
  | { type: 'existing-path'; path: string }
  | { type: 'cached-download' };

export class TemporalServerUnavailableError extends Error {
  constructor(kind: ServerKind, detail: string) {
    const what = kind === 'cli' ? 'Temporal CLI (dev server)' : 'Temporal time-skipping test server';
    const envVar = kind === 'cli' ? 'TEMPORAL_CLI_PATH' : 'TEMPORAL_TEST_SERVER_PATH';
    const build =
      kind === 'cli'
        ? `install Go and run \`npm run temporal:servers -- ensure\` (builds github.com/temporalio/cli ${TEMPORAL_CLI_VERSION})`
        : `install Java 17+ and Maven and run \`npm run temporal:servers -- ensure\` (fetches io.temporal:temporal-test-server:${TEST_SERVER_VERSION})`;
    super(
      `The ${what} is not available: ${detail}\n` +
        `Provide it in one of these ways: set ${envVar} to an executable; or ${build}; ` +
        `or use a machine that can reach github.com / temporal.download, where the Temporal SDK downloads it itself.`,
    );
    this.name = 'TemporalServerUnavailableError';
  }
}

export function cacheDir(env = process.env): string {
  if (env.ARREARS_CACHE_DIR) return path.resolve(env.ARREARS_CACHE_DIR);
  const base = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(base, 'arrears');
}

export function cachedCliPath(env = process.env): string {
  return path.join(cacheDir(env), `temporal-cli-${TEMPORAL_CLI_VERSION}`, 'temporal');
}

export function cachedTestServerPath(env = process.env): string {
  return path.join(cacheDir(env), `temporal-test-server-${TEST_SERVER_VERSION}`, 'temporal-test-server');
}

function explicitPath(kind: ServerKind, env: NodeJS.ProcessEnv): string | undefined {
  const envVar = kind === 'cli' ? 'TEMPORAL_CLI_PATH' : 'TEMPORAL_TEST_SERVER_PATH';
  const value = env[envVar];
  if (!value) return undefined;
  if (!existsSync(value)) {
    throw new TemporalServerUnavailableError(kind, `${envVar}=${value} does not exist.`);
  }
  return value;
}

/**
 * What to give @temporalio/testing for this server, without building anything:
 * an explicit or cached path, else the SDK's download.
 */
export function resolveServerExecutable(kind: ServerKind, env = process.env): ServerExecutable {
  const explicit = explicitPath(kind, env);
  if (explicit) return { type: 'existing-path', path: explicit };
  const cached = kind === 'cli' ? cachedCliPath(env) : cachedTestServerPath(env);
  if (existsSync(cached)) return { type: 'existing-path', path: cached };
  return { type: 'cached-download' };
}

function hasCommand(command: string, versionArg = 'version'): boolean {
  return spawnSync(command, [versionArg], { stdio: 'ignore' }).status === 0;
}

function log(message: string): void {
  process.stderr.write(`[temporal-servers] ${message}\n`);
}

/** Builds the Temporal CLI into the cache with `go install`; returns its path. */
export function buildCli(env = process.env): string {
  const target = cachedCliPath(env);
  if (existsSync(target)) return target;
  if (!hasCommand('go')) throw new TemporalServerUnavailableError('cli', 'Go is not installed, and nothing is cached.');
  const staging = `${path.dirname(target)}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  log(`building Temporal CLI ${TEMPORAL_CLI_VERSION} with go install (first time only, takes minutes)...`);
  execFileSync('go', ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...env, GOBIN: staging, CGO_ENABLED: '0' },
  });
  // Rename the finished folder into place so an interrupted build never looks complete.
  renameSync(staging, path.dirname(target));
  log(`Temporal CLI ready at ${target}`);
  return target;
}

/** Fetches the test server and its dependencies with Maven and writes a launcher; returns its path. */
export function buildTestServer(env = process.env): string {
  const target = cachedTestServerPath(env);
  if (existsSync(target)) return target;
  if (!hasCommand('java', '-version') || !hasCommand('mvn', '-v')) {
    throw new TemporalServerUnavailableError('test-server', 'Java or Maven is not installed, and nothing is cached.');
  }
  const finalDir = path.dirname(target);
  const staging = `${finalDir}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  writeFileSync(
    path.join(staging, 'pom.xml'),
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>arrears</groupId>
  <artifactId>temporal-test-server-launcher</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>${TEST_SERVER_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>${SLF4J_NOP_VERSION}</version></dependency>
  </dependencies>
</project>
`,
  );
  log(`fetching io.temporal:temporal-test-server:${TEST_SERVER_VERSION} from Maven Central...`);
  execFileSync('mvn', ['-q', '-B', '-Dstyle.color=never', 'dependency:copy-dependencies', `-DoutputDirectory=${path.join(staging, 'lib')}`], {
    cwd: staging,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  // The SDK starts this as `<exe> <port>`, gives it about five seconds to answer, and stops
  // it with SIGKILL on the direct child: so `exec` java (no shell left behind), and trim JVM
  // start-up (C1 only, serial GC, class-data sharing) for busy two-core machines.
  writeFileSync(
    path.join(staging, 'temporal-test-server'),
    `#!/bin/sh
here="$(cd "$(dirname "$0")" && pwd)"
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -cp "$here/lib/*" io.temporal.testserver.TestServer "$@"
`,
  );
  chmodSync(path.join(staging, 'temporal-test-server'), 0o755);
  rmSync(finalDir, { recursive: true, force: true });
  renameSync(staging, finalDir);
  log(`time-skipping test server ready at ${target}`);
  return target;
}

/**
 * Makes both servers available locally where this machine can build them. Where it cannot
 * (no Go, no Maven), it says so and leaves the SDK's download to try at test time.
 */
export function ensureServers(
  env = process.env,
  kinds: readonly ServerKind[] = ['cli', 'test-server'],
): Partial<Record<ServerKind, ServerExecutable>> {
  const result: Partial<Record<ServerKind, ServerExecutable>> = {};
  for (const kind of kinds) {
    const found = resolveServerExecutable(kind, env);
    if (found.type === 'existing-path') {
      result[kind] = found;
      continue;
    }
    try {
      result[kind] = { type: 'existing-path', path: kind === 'cli' ? buildCli(env) : buildTestServer(env) };
    } catch (err) {
      log(`${(err as Error).message.split('\n')[0]} Falling back to the Temporal SDK's own download.`);
      result[kind] = { type: 'cached-download' };
    }
  }
  return result;
}

if (require.main === module) {
  const command = process.argv[2] ?? 'ensure';
  if (command === 'ensure') {
    const servers = ensureServers();
    for (const [kind, exe] of Object.entries(servers)) {
      log(`${kind}: ${exe.type === 'existing-path' ? exe.path : "the Temporal SDK's download"}`);
    }
  } else if (command === 'path') {
    const kind = process.argv[3] === 'test-server' ? 'test-server' : 'cli';
    const exe = resolveServerExecutable(kind);
    if (exe.type !== 'existing-path') throw new TemporalServerUnavailableError(kind, 'nothing is configured or cached.');
    process.stdout.write(`${exe.path}\n`);
  } else {
    process.stderr.write('usage: temporal-servers.ts [ensure | path cli | path test-server]\n');
    process.exit(2);
  }
}
