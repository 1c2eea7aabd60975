// What the compatible shapes share: an error raised in Airlock's own field names is re-raised in the caller's.
import { AirlockError } from '../../errors.ts';

/** Airlock's field (a dotted path, or its prefix) → the same field in the caller's shape. */
export type FieldNames = Readonly<Record<string, string>>;

export function renameField(param: string, names: FieldNames): string {
  for (const [from, to] of Object.entries(names)) {
    if (param === from || param.startsWith(`${from}.`)) return to + param.slice(from.length);
  }
  return param;
}

/** Runs `fn`; an AirlockError naming one of Airlock's fields is thrown again naming the caller's. */
export async function inCallerFields<T>(names: FieldNames, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof AirlockError) || !err.param) throw err;
    const param = renameField(err.param, names);
    if (param === err.param) throw err;
    // Whole field names only: `id` must not turn `valid` into something else.
    const named = new RegExp(`(?<![\\w.])${err.param.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w])`, 'g');
    throw new AirlockError(err.code, err.message.replace(named, param), {
      param,
      ...(err.actionId ? { actionId: err.actionId } : {}),
      cause: err,
    });
  }
}
