// Every action status lives here. Adding one fails compilation until each switch over Status handles it.

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

export function assertNever(value: never): never {
  throw new Error(`Unhandled value: ${String(value)}`);
}

/** Terminal statuses never change again. `approved` is terminal only for decide-only actions. */
export function isTerminal(status: Status): boolean {
  switch (status) {
    case 'blocked':
    case 'rejected':
    case 'expired':
    case 'cancelled':
    case 'completed':
    case 'failed':
      return true;
    case 'received':
    case 'awaiting_approval':
    case 'approved':
    case 'pending':
      return false;
    default:
      return assertNever(status);
  }
}
