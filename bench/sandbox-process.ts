// Runs the Stripe sandbox alone in its own process, so benchmarks measure it without sharing an event loop.
import { startSandbox } from '../src/stripe/sandbox/index.ts';

const sandbox = await startSandbox({ port: Number(process.env['PORT'] ?? 0) });
process.stdout.write(`${JSON.stringify({ url: sandbox.url })}\n`);
process.on('SIGTERM', () => void sandbox.close().then(() => process.exit(0)));
