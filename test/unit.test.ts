// Unit tests of the pure pieces: money, schedule arithmetic, configuration, server resolution,
// and the lint rule that keeps workflow code deterministic.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { isTemporalUnreachable } from '../api/invoice-service';
import { ConfigError, configSchema, loadConfig } from '../config';
import {
  collectionStartsAt,
  daysOverdue,
  debtorStepDue,
  dueDateBegins,
  isPreDueStepTooLate,
  isStepSuperseded,
  lateStartShiftMs,
  stepDueAt,
  stepDueForDebtor,
  utcStepDue,
} from '../domain/collection';
import { localParts, nextContactTime } from '../domain/contact-window';
import { formatMoney } from '../domain/money';
import { currencySchema, positiveMinorUnitsSchema } from '../domain/schemas';
import { contactWindowSchema, defaultPolicy, policySchema, referralOffsetAfter, stepApplies } from '../domain/policy';
import {
  cachedCliPath,
  resolveServerExecutable,
  TemporalServerUnavailableError,
} from '../scripts/temporal-servers';

describe('money', () => {
  it('formats minor units in the debtor locale without floating-point drift', () => {
    expect(formatMoney(123456, 'EUR', 'de-DE')).toBe('1.234,56\u00a0€');
    expect(formatMoney(30, 'USD', 'en-US')).toBe('$0.30');
    expect(formatMoney(5000, 'JPY', 'en-US')).toBe('¥5,000');
  });

  it('rejects fractional, zero and negative amounts and unknown currencies', () => {
    expect(positiveMinorUnitsSchema.safeParse(12.5).success).toBe(false);
    expect(positiveMinorUnitsSchema.safeParse(0).success).toBe(false);
    expect(positiveMinorUnitsSchema.safeParse(-1).success).toBe(false);
    expect(positiveMinorUnitsSchema.safeParse(100).success).toBe(true);
    const bad = currencySchema.safeParse('EUX');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toContain('unknown currency "EUX"');
  });
});

describe('schedule arithmetic', () => {
  it('makes a step due when its day has begun where the debtor is, never earlier than 00:00 UTC', () => {
    // Los Angeles (PDT, UTC-7): day 1 after 2026-10-30 begins at 07:00 UTC on the 31st.
    expect(stepDueForDebtor('2026-10-30', 1, 'America/Los_Angeles').toISOString()).toBe('2026-10-31T07:00:00.000Z');
    // After the change to PST (UTC-8) on 1 November.
    expect(stepDueForDebtor('2026-11-01', 1, 'America/Los_Angeles').toISOString()).toBe('2026-11-02T08:00:00.000Z');
    // East of UTC the day began before 00:00 UTC: unchanged.
    expect(stepDueForDebtor('2026-10-30', 1, 'Europe/Berlin').toISOString()).toBe(stepDueAt('2026-10-30', 1).toISOString());
    expect(stepDueForDebtor('2026-10-30', -3, 'Etc/UTC').toISOString()).toBe('2026-10-27T00:00:00.000Z');
    // Summer time begins at midnight in Santiago on 6 September 2026: that day begins at 01:00 (UTC-3).
    expect(stepDueForDebtor('2026-09-05', 1, 'America/Santiago').toISOString()).toBe('2026-09-06T04:00:00.000Z');
  });

  it('puts a step at the due date plus its offset, in UTC days', () => {
    expect(stepDueAt('2026-01-31', 1).toISOString()).toBe('2026-02-01T00:00:00.000Z');
    expect(stepDueAt('2026-01-31', -3).toISOString()).toBe('2026-01-28T00:00:00.000Z');
    expect(daysOverdue('2026-01-31', new Date('2026-03-02T12:00:00Z'))).toBe(30);
  });

  it('supersedes a contact step once a later one is due, so a late wake-up sends one reminder, not a burst', () => {
    const due = '2026-01-31';
    const wokeOnDay = (day: number) => new Date(stepDueAt(due, day).getTime() + 3_600_000);
    const superseded = (day: number) => defaultPolicy.steps.map((s, i) => [s.id, isStepSuperseded(defaultPolicy, utcStepDue(due), i, wokeOnDay(day))]);
    // A worker down from day 0 to day 31: pre-due, day 1 and day 7 are superseded; day 30's steps run.
    expect(Object.fromEntries(superseded(31))).toMatchObject({
      'pre-due': true,
      'day-1': true,
      'day-7-letter': true,
      'day-7-call': true,
      'day-30': false,
      'day-30-hold': false,
    });
    // Steps on the same day never supersede each other; gated steps are never superseded.
    expect(Object.fromEntries(superseded(8))).toMatchObject({ 'day-7-letter': false, 'day-7-call': false });
    expect(Object.fromEntries(superseded(200))).toMatchObject({ agency: false, legal: false });
  });

  it('resumes a late-starting case at the latest contact step due, keeping the spacing after it', () => {
    // Registered on day 20: day 7 is the latest contact step due, so the ladder moves 13 days.
    expect(lateStartShiftMs(defaultPolicy, utcStepDue('2026-01-31'), stepDueAt('2026-01-31', 20))).toBe(13 * 86_400_000);
    expect(lateStartShiftMs(defaultPolicy, utcStepDue('2026-01-31'), stepDueAt('2026-01-31', -10))).toBe(0);
    // Registered a day before the due date: the heads-up is late, but day 1 stays day 1.
    expect(lateStartShiftMs(defaultPolicy, utcStepDue('2026-01-31'), stepDueAt('2026-01-31', -1))).toBe(0);
    // (Runs started before the debtor-calendar rules moved the ladder by the heads-up's lateness.)
    expect(lateStartShiftMs(defaultPolicy, utcStepDue('2026-01-31'), stepDueAt('2026-01-31', -1), true)).toBe(2 * 86_400_000);
  });

  it("counts a late start and a late wake-up in the debtor's days, west of UTC too", () => {
    const due = '2026-01-31';
    // Los Angeles (UTC-8): day 20 begins there at 08:00 UTC. Registered at 20:00 local on day 20,
    // the day-7 step fell due 13 days and 20 hours ago: it runs now, not 8 hours from now.
    const la = debtorStepDue(due, 'America/Los_Angeles');
    const registered = new Date(la(20).getTime() + 20 * 3_600_000);
    expect(lateStartShiftMs(defaultPolicy, la, registered)).toBe(registered.getTime() - la(7).getTime());
    expect(la(7).getTime() + lateStartShiftMs(defaultPolicy, la, registered)).toBe(registered.getTime());
    // At 02:00 UTC on day 30 it is still day 29 in Los Angeles: the day-7 steps are not yet superseded.
    const early = new Date(stepDueAt(due, 30).getTime() + 2 * 3_600_000);
    expect(isStepSuperseded(defaultPolicy, la, 2, early)).toBe(false);
    expect(isStepSuperseded(defaultPolicy, utcStepDue(due), 2, early)).toBe(true);
  });

  it('drops a heads-up once the due date has begun for the debtor or in UTC, whichever is first', () => {
    const due = '2027-03-10';
    // Los Angeles: 18:30 on the eve is 02:30 UTC on the due date: too late for a heads-up, and no shift.
    const came = dueDateBegins(due, 'America/Los_Angeles');
    expect(came.toISOString()).toBe('2027-03-10T00:00:00.000Z');
    const eve = new Date('2027-03-10T02:30:00Z');
    expect(isPreDueStepTooLate(-3, came, eve)).toBe(true);
    // Tokyo: the due date begins at 15:00 UTC the day before; at 08:00 there it has come.
    expect(dueDateBegins(due, 'Asia/Tokyo').toISOString()).toBe('2027-03-09T15:00:00.000Z');
    expect(isPreDueStepTooLate(-3, dueDateBegins(due, 'Asia/Tokyo'), new Date('2027-03-09T23:00:00Z'))).toBe(true);
  });

  it("starts a case a day before its policy's earliest step", () => {
    // The default heads-up is 3 days before the due date: the case starts 4 days before it.
    expect(collectionStartsAt(defaultPolicy, '2026-01-31').toISOString()).toBe('2026-01-27T00:00:00.000Z');
    const noHeadsUp = policySchema.parse({
      name: 'no-heads-up',
      version: 1,
      steps: [{ id: 'day-5', offsetDays: 5, action: 'email', template: 'courtesy_reminder', tone: 'friendly' }],
    });
    expect(collectionStartsAt(noHeadsUp, '2026-01-31').toISOString()).toBe('2026-02-04T00:00:00.000Z');
  });
});

describe('configuration', () => {
  it('has working defaults and no default secrets', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ TEMPORAL_ADDRESS: 'localhost:7233', TEMPORAL_NAMESPACE: 'default', API_PORT: 3000 });
    expect(config.SENDGRID_API_KEY).toBeUndefined();
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it('names every invalid variable in one error', () => {
    const attempt = () => loadConfig({ DATABASE_URL: 'mysql://x', API_PORT: 'eighty', LOG_LEVEL: 'loud' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/DATABASE_URL: must be a postgres/);
    expect(attempt).toThrow(/API_PORT/);
    expect(attempt).toThrow(/LOG_LEVEL/);
  });

  it('refuses a worker cache too small for the two workflow tasks a worker runs at least', () => {
    expect(() => loadConfig({ WORKER_MAX_CACHED_WORKFLOWS: '3' })).toThrow(/WORKER_MAX_CACHED_WORKFLOWS: must be 0 \(no cache\) or at least 4/);
    expect(loadConfig({ WORKER_MAX_CACHED_WORKFLOWS: '0' }).WORKER_MAX_CACHED_WORKFLOWS).toBe(0);
    expect(loadConfig({ WORKER_MAX_CACHED_WORKFLOWS: '4' }).WORKER_MAX_CACHED_WORKFLOWS).toBe(4);
  });

  it('treats an empty variable as unset, as compose files write it', () => {
    expect(loadConfig({ SENDGRID_API_KEY: '' }).SENDGRID_API_KEY).toBeUndefined();
  });
});

describe('Temporal server resolution', () => {
  const emptyCache = () => mkdtempSync(path.join(tmpdir(), 'arrears-cache-'));

  it('prefers an explicitly configured executable', () => {
    const dir = emptyCache();
    const exe = path.join(dir, 'my-temporal');
    writeFileSync(exe, '');
    expect(resolveServerExecutable('cli', { TEMPORAL_CLI_PATH: exe, ARREARS_CACHE_DIR: dir })).toEqual({ type: 'existing-path', path: exe });
  });

  it('fails with a clear message when the configured executable does not exist', () => {
    const attempt = () => resolveServerExecutable('test-server', { TEMPORAL_TEST_SERVER_PATH: '/nope/test-server' });
    expect(attempt).toThrow(TemporalServerUnavailableError);
    expect(attempt).toThrow(/TEMPORAL_TEST_SERVER_PATH=\/nope\/test-server does not exist/);
  });

  it('uses the cached build, and falls back to the SDK download when nothing is cached', () => {
    const dir = emptyCache();
    expect(resolveServerExecutable('cli', { ARREARS_CACHE_DIR: dir })).toEqual({ type: 'cached-download' });
    const cached = cachedCliPath({ ARREARS_CACHE_DIR: dir });
    mkdirSync(path.dirname(cached), { recursive: true });
    writeFileSync(cached, '');
    expect(resolveServerExecutable('cli', { ARREARS_CACHE_DIR: dir })).toEqual({ type: 'existing-path', path: cached });
  });
});

describe('workflow determinism lint rule', () => {
  const eslint = new ESLint({ cwd: path.resolve(__dirname, '..') });
  const lint = async (filePath: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath });
    return result!.messages.map((m) => m.ruleId);
  };

  it('rejects Node built-ins, I/O libraries and Math.random in workflow code', async () => {
    expect(await lint('workflows/bad.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toContain('no-restricted-imports');
    expect(await lint('workflows/bad.ts', "import postgres from 'postgres';\nexport const x = postgres;\n")).toContain('no-restricted-imports');
    expect(await lint('workflows/bad.ts', 'export const x = Math.random();\n')).toContain('no-restricted-properties');
  });

  it('allows importing activity types and the same code outside workflows/', async () => {
    expect(await lint('workflows/ok.ts', "import type { Activities } from '../activities';\nexport type A = Activities;\n")).toEqual([]);
    expect(await lint('activities/ok.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toEqual([]);
  });
});

describe('README', () => {
  const readme = readFileSync(path.resolve(__dirname, '..', 'README.md'), 'utf8');

  it('documents every configuration variable the code reads, and no other', () => {
    const documented = [...readme.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    const tooling = ['TEMPORAL_CLI_PATH', 'TEMPORAL_TEST_SERVER_PATH', 'ARREARS_CACHE_DIR'];
    expect(documented.sort()).toEqual([...Object.keys(configSchema.shape), ...tooling].sort());
  });
});

describe('contact windows', () => {
  const window = { weekdays: [1, 2, 3, 4, 5], start: '09:00', end: '18:00' };

  it('moves a night-time step to 09:00 the next business morning in the debtor zone', () => {
    // Friday 2026-11-27 22:30 in Berlin (21:30 UTC) → Monday 2026-11-30 09:00 Berlin (08:00 UTC).
    expect(nextContactTime(new Date('2026-11-27T21:30:00Z'), 'Europe/Berlin', window).toISOString()).toBe('2026-11-30T08:00:00.000Z');
    // Same instant for a debtor in New York: Friday 16:30 local, inside the window: unchanged.
    expect(nextContactTime(new Date('2026-11-27T21:30:00Z'), 'America/New_York', window).toISOString()).toBe('2026-11-27T21:30:00.000Z');
  });

  it('moves an early-morning step to the window start of the same day, across a DST change', () => {
    // 2026-03-30 is the Monday after Europe's switch to summer time: 09:00 Berlin = 07:00 UTC.
    expect(nextContactTime(new Date('2026-03-30T03:00:00Z'), 'Europe/Berlin', window).toISOString()).toBe('2026-03-30T07:00:00.000Z');
    expect(localParts(new Date('2026-03-30T07:00:00Z'), 'Europe/Berlin')).toMatchObject({ hour: 9, weekday: 1 });
  });

  it('offers the day summer time begins, late on the evening before it too', () => {
    const sundays = { weekdays: [7], start: '09:00', end: '18:00' };
    // Saturday 2026-03-28 23:30 in Berlin (22:30 UTC); the Sunday after has 23 hours, and its 09:00 is 07:00 UTC.
    expect(nextContactTime(new Date('2026-03-28T22:30:00Z'), 'Europe/Berlin', sundays).toISOString()).toBe('2026-03-29T07:00:00.000Z');
    // The old 24-hour jumps (runs started before the fix) landed on Monday 00:30 and waited a week.
    expect(nextContactTime(new Date('2026-03-28T22:30:00Z'), 'Europe/Berlin', sundays, 'fixed-24h').toISOString()).toBe('2026-04-05T07:00:00.000Z');
    // And the day summer time ends (25 hours) in New York: Sunday 2026-11-01 09:00 EST is 14:00 UTC.
    expect(nextContactTime(new Date('2026-11-01T03:30:00Z'), 'America/New_York', sundays).toISOString()).toBe('2026-11-01T14:00:00.000Z');
  });

  it('refuses a policy window outside 08:00-21:00', () => {
    expect(contactWindowSchema.safeParse({ weekdays: [1], start: '07:00', end: '18:00' }).success).toBe(false);
    expect(contactWindowSchema.safeParse({ weekdays: [1], start: '09:00', end: '22:00' }).success).toBe(false);
  });
});

describe('collection policy', () => {
  it('names an agency referral in the final notice only when the policy will make one at this balance', () => {
    const finalNotice = defaultPolicy.steps.findIndex((s) => s.action === 'final_notice');
    expect(referralOffsetAfter(defaultPolicy, finalNotice, 125_000)).toBe(60);
    // Below 500.00 the policy proposes a write-off at day 60: the notice threatens no agency.
    expect(referralOffsetAfter(defaultPolicy, finalNotice, 30_000)).toBeUndefined();
    // A policy whose next gated step is legal action: the notice's words name an agency, so no date.
    const legalFirst = policySchema.parse({
      ...defaultPolicy,
      steps: defaultPolicy.steps.filter((s) => s.action !== 'agency_referral' && s.action !== 'write_off'),
    });
    expect(referralOffsetAfter(legalFirst, legalFirst.steps.findIndex((s) => s.action === 'final_notice'), 125_000)).toBeUndefined();
  });

  it('follows the domain timeline by default and validates as data', () => {
    expect(policySchema.parse(defaultPolicy)).toEqual(defaultPolicy);
    expect(defaultPolicy.steps.map((s) => [s.offsetDays, s.action])).toEqual([
      [-3, 'email'],
      [1, 'email'],
      [7, 'letter'],
      [7, 'call_task'],
      [30, 'email'],
      [30, 'credit_hold'],
      [45, 'final_notice'],
      [60, 'agency_referral'],
      [60, 'write_off'],
      [90, 'legal_action'],
    ]);
  });

  it('chooses write-off over agency referral for a balance that would not cover the costs', () => {
    const at60 = defaultPolicy.steps.filter((s) => s.offsetDays === 60);
    expect(at60.filter((s) => stepApplies(s, 20_000)).map((s) => s.action)).toEqual(['write_off']);
    expect(at60.filter((s) => stepApplies(s, 500_000)).map((s) => s.action)).toEqual(['agency_referral']);
  });

  it('rejects a gated step without an approval rule, duplicate ids and steps out of order', () => {
    const bad = {
      ...defaultPolicy,
      steps: [
        { id: 'a', offsetDays: 10, action: 'email', template: 't', tone: 'friendly' },
        { id: 'a', offsetDays: 5, action: 'legal_action', template: 't', tone: 'final' },
      ],
    };
    const messages = policySchema.safeParse(bad).error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringContaining('steps.1.approval'),
        expect.stringContaining('duplicate step id "a"'),
        expect.stringContaining('steps must be in time order'),
      ]),
    );
  });
});

describe('Temporal outages', () => {
  const signalVia = (connection: Connection) => new Client({ connection }).workflow.getHandle('collection-none').signal('paymentReceived');

  it('tells an unreachable server or a closed connection from any other failure', async () => {
    // Nothing listens on port 1; without the client's own retries the call fails at once.
    const refused = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
    const unreachable = await signalVia(refused).catch((err: unknown) => err);
    await refused.close();
    expect(isTemporalUnreachable(unreachable)).toBe(true);
    const closed = Connection.lazy({ address: '127.0.0.1:1' });
    await closed.close();
    expect(isTemporalUnreachable(await signalVia(closed).catch((err: unknown) => err))).toBe(true);
    expect(isTemporalUnreachable(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).toBe(false);
    expect(isTemporalUnreachable(undefined)).toBe(false);
  });
});
