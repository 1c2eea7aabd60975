// Every action status lives here, below the store, so the actions table's status column can be typed by it and
// checked against it (migration 0014). The engine's handling of them (terminal or not, exhaustive switches) is in
// src/engine/status.ts, which re-exports these. Adding a status fails compilation until each switch over Status
// handles it, and needs a migration that widens the database's check (test/store/repositories.test.ts fails until
// it does).

export const STATUSES = [
  'received',
  'blocked',
  'awaiting_approval',
  'approved',
  'rejected',
  'expired',
  'cancelled',
  'pending',
  'completed',
  'failed',
] as const;

export type Status = (typeof STATUSES)[number];

export function isStatus(value: string): value is Status {
  return (STATUSES as readonly string[]).includes(value);
}
