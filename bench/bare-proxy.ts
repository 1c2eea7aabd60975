// The limit for a Node gateway: a forwarding proxy on the same HTTP stack (Fastify in, undici out) that records
// nothing and decides nothing. Airlock's allow path is measured against it.
import Fastify from 'fastify';
import { Agent, request } from 'undici';

const upstream = process.env['UPSTREAM']!;
const agent = new Agent({ connections: 128 });
const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
app.all('/*', async (req, reply) => {
  const res = await request(`${upstream}${req.url}`, {
    method: req.method as 'POST',
    headers: {
      authorization: 'Bearer sk_test_bench',
      'content-type': req.headers['content-type'] ?? 'application/x-www-form-urlencoded',
      ...(req.headers['idempotency-key']
        ? { 'idempotency-key': String(req.headers['idempotency-key']) }
        : {}),
    },
    body: typeof req.body === 'string' ? req.body : undefined,
    dispatcher: agent,
  });
  const text = await res.body.text();
  return reply.code(res.statusCode).header('content-type', 'application/json').send(text);
});
await app.listen({ port: 0, host: '127.0.0.1' });
const addr = app.server.address();
process.stdout.write(
  `${JSON.stringify({ url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` })}\n`,
);
