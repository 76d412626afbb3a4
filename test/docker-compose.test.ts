import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { parse } from 'yaml';
import { SearchAttributeType } from '@temporalio/common';
import { configSchema } from '../config';
import { allSearchAttributeKeys } from '../workflows/messages';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const composePath = path.join(root, 'docker-compose.yml');

type Service = {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean | null> | string[];
  healthcheck?: { test?: string | string[] };
  command?: string | string[];
  entrypoint?: string | string[];
};
type Compose = { services: Record<string, Service> };

const compose = parse(readFileSync(composePath, 'utf8')) as Compose;
const appServices = ['worker', 'api'] as const;

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

/** A service's environment as name -> value, whichever of compose's two forms it uses. */
function environmentOf(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const eq = entry.indexOf('=');
        return eq === -1 ? [entry, ''] : [entry.slice(0, eq), entry.slice(eq + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

function text(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(' ') : (value ?? '');
}

/**
 * A value the host supplies: `${NAME}`, `${NAME:?message}`, `${NAME?message}` or `${NAME:-}`
 * (empty when unset). A non-empty `${NAME:-default}` would be a default secret.
 */
const hostInterpolation = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}$/;
const secretName = /PASSWORD|PWD|KEY|SECRET|TOKEN/i;

const composeTypeOf: Record<string, string> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.TEXT]: 'Text',
  [SearchAttributeType.INT]: 'Int',
  [SearchAttributeType.DOUBLE]: 'Double',
  [SearchAttributeType.BOOL]: 'Bool',
  [SearchAttributeType.DATETIME]: 'Datetime',
  [SearchAttributeType.KEYWORD_LIST]: 'KeywordList',
};

describe('docker-compose.yml', () => {
  it('sets on the worker and the API only variables the config schema knows', () => {
    const known = Object.keys(configSchema.shape);
    for (const name of appServices) {
      const unknown = Object.keys(environmentOf(name)).filter((key) => !known.includes(key));
      expect(unknown, `service ${name}`).toEqual([]);
    }
  });

  it('points the worker and the API at Temporal and PostgreSQL', () => {
    for (const name of appServices) {
      expect(Object.keys(environmentOf(name)), `service ${name}`).toEqual(
        expect.arrayContaining(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_TASK_QUEUE', 'DATABASE_URL']),
      );
      const env = environmentOf(name);
      expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(env.DATABASE_URL).toMatch(/^postgres(ql)?:\/\/[^@]+@postgres:5432\/arrears$/);
    }
    // Both processes must agree on where the collection workflows live.
    expect(environmentOf('api').TEMPORAL_NAMESPACE).toBe(environmentOf('worker').TEMPORAL_NAMESPACE);
    expect(environmentOf('api').TEMPORAL_TASK_QUEUE).toBe(environmentOf('worker').TEMPORAL_TASK_QUEUE);
  });

  it('makes the API listen on all interfaces of its container, on the published port', () => {
    const env = environmentOf('api');
    expect(env.API_HOST).toBe('0.0.0.0');
    expect(env.API_PORT).toBe('3000');
  });

  it('contains no literal secret: passwords and keys come from the host environment', () => {
    for (const [name] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(environmentOf(name))) {
        if (secretName.test(key)) {
          expect(value, `${name}.${key}`).toMatch(hostInterpolation);
        }
        // Credentials inside a URL, e.g. postgres://user:password@host/db.
        const urlPassword = /^[a-z][a-z0-9+.-]*:\/\/[^:/@]+:([^@]*)@/i.exec(value)?.[1];
        if (urlPassword !== undefined) {
          expect(urlPassword, `${name}.${key} (password in URL)`).toMatch(hostInterpolation);
        }
      }
    }
  });

  it('registers exactly the search attributes the workflow sets, with their types', () => {
    const sa = service('temporal-search-attributes');
    const script = text(sa.command);
    const registered = [...script.matchAll(/--name\s+(\w+)\s+--type\s+(\w+)/g)].map((m) => ({ name: m[1], type: m[2] }));
    const expected = allSearchAttributeKeys.map((key) => ({ name: key.name, type: composeTypeOf[key.type] }));
    expect(registered).toHaveLength(expected.length);
    expect(registered).toEqual(expect.arrayContaining(expected));
    // ...in the namespace the worker and the API use.
    const namespaces = new Set([...script.matchAll(/--namespace\s+(\S+)/g)].map((m) => m[1]));
    expect([...namespaces]).toEqual([environmentOf('worker').TEMPORAL_NAMESPACE]);
  });

  it('gives PostgreSQL, Temporal and the API healthchecks, the API one asking /readyz', () => {
    for (const name of ['postgres', 'temporal', 'api']) {
      expect(text(service(name).healthcheck?.test), `service ${name}`).not.toBe('');
    }
    expect(text(service('postgres').healthcheck?.test)).toContain('pg_isready');
    expect(text(service('api').healthcheck?.test)).toContain('/readyz');
  });

  it('is accepted by `docker compose config` wherever Docker Compose is installed', () => {
    const version = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    // Without Compose (as on the CI machines) there is nothing to ask: not applicable here.
    if (version.status === 0) {
      const result = spawnSync('docker', ['compose', '-f', 'docker-compose.yml', 'config', '-q'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, POSTGRES_PASSWORD: 'compose-config-check' },
      });
      expect(result.status, result.stderr).toBe(0);
    }
  });
});
