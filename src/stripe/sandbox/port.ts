import { type Sandbox, type SandboxOptions, startSandbox } from './server.ts';

export interface PlacedSandbox {
  sandbox: Sandbox;
  /** The port it was meant to have when it had to take another, so the caller can say so. */
  wanted: number | null;
}

/**
 * Starts the built-in sandbox beside Airlock. An explicit port is used or start-up fails (the operator asked for it);
 * otherwise the port after Airlock's, and a free one when that is taken, so two Airlocks on one machine both start.
 */
export async function startSandboxBeside(
  airlockPort: number,
  explicitPort: number | undefined,
  opts: Omit<SandboxOptions, 'port'> = {},
): Promise<PlacedSandbox> {
  if (explicitPort !== undefined)
    return { sandbox: await startSandbox({ ...opts, port: explicitPort }), wanted: null };
  const preferred = airlockPort === 0 || airlockPort >= 65535 ? 0 : airlockPort + 1;
  try {
    return { sandbox: await startSandbox({ ...opts, port: preferred }), wanted: null };
  } catch (err) {
    if (preferred === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    return { sandbox: await startSandbox({ ...opts, port: 0 }), wanted: preferred };
  }
}
