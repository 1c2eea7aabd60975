// A callback receiver that verifies Airlock's signature with the SDK before trusting the event.
// AIRLOCK_CALLBACK_SECRET=$(npx airlock callbacks secret) PORT=4800 npx tsx examples/webhook-receiver.ts
import { createServer } from 'node:http';
import { verifyWebhook, WebhookVerificationError } from 'airlock/sdk';

const secret = process.env['AIRLOCK_CALLBACK_SECRET'];
if (!secret) throw new Error('set AIRLOCK_CALLBACK_SECRET');
const seen = new Set<string>();

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      // Verify the raw bytes as received: re-serialised JSON would not match the signature.
      const event = verifyWebhook(Buffer.concat(chunks), req.headers['airlock-signature'], secret);
      // Retries carry the same event id: acknowledge them without acting twice.
      if (!seen.has(event.id)) {
        seen.add(event.id);
        const action = event.data.object as { id: string; status: string };
        console.log(`event ${event.type} ${action.id} ${action.status}`);
      }
      res.writeHead(200).end();
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      console.log(`refused ${err.reason}`);
      res.writeHead(400).end();
    }
  });
});

server.listen(Number(process.env['PORT'] ?? 4800), '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening http://127.0.0.1:${typeof address === 'object' && address ? address.port : ''}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
