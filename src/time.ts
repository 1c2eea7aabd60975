// Durations as people write them in flags and policy files: `90m`, `12h`, `30d`, `4w`.

/** Milliseconds in one of each unit a duration may be written in. */
export const MS_PER_UNIT = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

export type DurationUnit = keyof typeof MS_PER_UNIT;

/**
 * A positive whole number and one of `units`, spaces allowed around and between them (`30d`, `90 m`), in
 * milliseconds; null for anything else, zero included. At most six digits, so a time it is added to stays a date.
 */
export function parseDuration(text: string, units: readonly DurationUnit[]): number | null {
  const m = /^(\d{1,6})\s*([a-z])$/.exec(text.trim());
  const unit = m?.[2] as DurationUnit | undefined;
  if (!m || !unit || !units.includes(unit)) return null;
  const ms = Number(m[1]) * MS_PER_UNIT[unit];
  return ms > 0 ? ms : null;
}
