import { AirlockError } from '../errors.ts';
import type { CallbackSender } from '../outbound/callbacks.ts';

/**
 * One check for every way a caller names a callback URL (the actions API's `callback`, the decisions API's
 * `callback_url`, the proxy's Airlock-Callback), refused up front with the caller's own name for it.
 */
export const MAX_CALLBACK_URL_LENGTH = 2048;

export async function checkCallbackParam(
  callbacks: CallbackSender | null,
  url: string | undefined,
  param: string,
): Promise<void> {
  if (url === undefined) return;
  if (url.length === 0 || url.length > MAX_CALLBACK_URL_LENGTH)
    throw new AirlockError(
      'parameter_invalid',
      `${param} must be a URL of 1 to ${MAX_CALLBACK_URL_LENGTH} characters`,
      { param },
    );
  if (!callbacks) throw new AirlockError('parameter_invalid', 'Callbacks are not enabled', { param });
  try {
    await callbacks.check(url);
  } catch (err) {
    if (err instanceof AirlockError)
      throw new AirlockError(err.code, err.message.replace(/^url/, param), { param });
    throw err;
  }
}
