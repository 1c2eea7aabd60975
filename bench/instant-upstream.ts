// A Stripe stand-in that answers at once with canned objects, so the benchmarks measure the proxies in front of it
// and not the upstream. Plain node:http, no framework: it must never be the bottleneck.
//
// POST /v1/refunds answers a refund; GET /v1/charges/:id a captured, undisputed $10,000 charge (Airlock looks the
// charge up to decide on a refund); GET /v1/customers/:id a month-old customer; anything else `{}`.
// With an IPC channel, the parent can send {record: true}: from then on each refund that carries
// metadata[airlock_action] is reported back as {arrived: act_…, at: epoch ms}, timestamped on arrival, which is
// how the approval-to-upstream latency is measured.
import { createServer } from 'node:http';

const EPOCH = () => performance.timeOrigin + performance.now();
const created = Math.floor(Date.now() / 1000) - 30 * 86_400;
let n = 0;
let recording = false;
process.on('message', (m: { record?: boolean }) => {
  if (typeof m.record === 'boolean') recording = m.record;
});

const ACTION = /(?:^|&)metadata(?:\[|%5B)airlock_action(?:\]|%5D)=(act_[A-Za-z0-9]+)/;

function refund(body: string): string {
  n++;
  const amount = /(?:^|&)amount=(\d+)/.exec(body)?.[1] ?? '100';
  const charge = /(?:^|&)charge=([A-Za-z0-9_]+)/.exec(body)?.[1] ?? 'ch_bench';
  return JSON.stringify({
    id: `re_bench${process.pid}x${n}`,
    object: 'refund',
    amount: Number(amount),
    balance_transaction: `txn_bench${n}`,
    charge,
    created: Math.floor(Date.now() / 1000),
    currency: 'usd',
    destination_details: null,
    metadata: {},
    payment_intent: null,
    reason: null,
    receipt_number: null,
    source_transfer_reversal: null,
    status: 'succeeded',
    transfer_reversal: null,
  });
}

function charge(id: string): string {
  return JSON.stringify({
    id,
    object: 'charge',
    amount: 1_000_000,
    amount_captured: 1_000_000,
    amount_refunded: 0,
    captured: true,
    created,
    currency: 'usd',
    // One customer per charge: the customer velocity windows stay as a real spread of refunds leaves them.
    customer: `cus_${id.slice(3).slice(-24) || 'bench'}`,
    disputed: false,
    paid: true,
    refunded: false,
    status: 'succeeded',
    metadata: {},
  });
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = EPOCH();
    const url = req.url ?? '/';
    let out = '{}';
    if (req.method === 'POST' && url.startsWith('/v1/refunds')) {
      const body = Buffer.concat(chunks).toString();
      out = refund(body);
      if (recording && process.send) {
        const action = ACTION.exec(body)?.[1];
        if (action) process.send({ arrived: action, at });
      }
    } else if (req.method === 'GET' && url.startsWith('/v1/charges/')) {
      out = charge(url.slice('/v1/charges/'.length).split('?')[0]!);
    } else if (req.method === 'GET' && url.startsWith('/v1/customers/')) {
      const id = url.slice('/v1/customers/'.length).split('?')[0]!;
      out = JSON.stringify({ id, object: 'customer', created, metadata: {} });
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(out),
      'request-id': `req_bench${n}`,
    });
    res.end(out);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(
    `${JSON.stringify({ url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` })}\n`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
