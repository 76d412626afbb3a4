import type { ContactWindow } from './policy';

/**
 * The debtor's time zone decides when they may be contacted. These functions are pure and
 * deterministic (Intl with an explicit zone), so the workflow uses them to place its timers.
 */

type LocalParts = { year: number; month: number; day: number; hour: number; minute: number; weekday: number };

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

const weekdays: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

/** The wall-clock date and time of `instant` in `timeZone`; weekday 1 = Monday. */
export function localParts(instant: Date, timeZone: string): LocalParts {
  const parts = Object.fromEntries(formatter(timeZone).formatToParts(instant).map((p) => [p.type, p.value]));
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    weekday: weekdays[parts.weekday as string]!,
  };
}

/** The instant at which it is `hh:mm` on the given local calendar day in `timeZone`. */
export function zonedTime(year: number, month: number, day: number, hh: number, mm: number, timeZone: string): Date {
  const asUtc = Date.UTC(year, month - 1, day, hh, mm);
  // Correct by the zone's offset at that moment; twice, in case the first guess crossed a DST change.
  let instant = asUtc;
  for (let i = 0; i < 2; i++) {
    const p = localParts(new Date(instant), timeZone);
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
    instant += asUtc - shown;
  }
  return new Date(instant);
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * The earliest instant at or after `earliest` that lies inside the contact window in the
 * debtor's time zone: on an allowed weekday, between the window's start and end.
 *
 * It walks the debtor's calendar days. `steps: 'fixed-24h'` is the old walk in 24-hour
 * jumps, kept for cases that started with it (replay): after 23:00 on the eve of a 23-hour day
 * (summer time begins), a jump lands on the day after, so that day was never offered.
 */
export function nextContactTime(earliest: Date, timeZone: string, window: ContactWindow, steps: 'local-days' | 'fixed-24h' = 'local-days'): Date {
  const start = minutes(window.start);
  const end = minutes(window.end);
  const first = localParts(earliest, timeZone);
  for (let dayOffset = 0; dayOffset < 8; dayOffset++) {
    const p = steps === 'local-days' ? localDay(first, dayOffset) : localParts(new Date(earliest.getTime() + dayOffset * 86_400_000), timeZone);
    if (!window.weekdays.includes(p.weekday)) continue;
    const now = dayOffset === 0 ? first.hour * 60 + first.minute : -1;
    if (now >= end) continue;
    if (now >= start) return earliest; // already inside the window today
    return zonedTime(p.year, p.month, p.day, Math.floor(start / 60), start % 60, timeZone);
  }
  throw new Error(`contact window ${JSON.stringify(window)} has no allowed time`);
}

/** The calendar date `days` after the local date of `from`, with its weekday (1 = Monday). */
function localDay(from: LocalParts, days: number): { year: number; month: number; day: number; weekday: number } {
  const date = new Date(Date.UTC(from.year, from.month - 1, from.day + days));
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate(), weekday: date.getUTCDay() || 7 };
}
