// A hop between Airlock and the Stripe sandbox that keeps what each upstream request carried, so a test can show
// what Airlock sent Stripe (and what it kept back).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Forwards every request to `target` and keeps the headers and path each one arrived with. */
export interface Recorder {
  url: string;
  target: string;
  seen: { method: string; path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const r: Recorder = { url: '', target: '', seen: [], close: async () => {} };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    r.seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k !== 'host') headers[k] = v;
    let up: Response;
    try {
      up = await fetch(`${r.target}${req.url}`, {
        method: req.method ?? 'GET',
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
    } catch {
      res.destroy(); // the upstream dropped the connection: so does this hop
      return;
    }
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'content-encoding') out[k] = v;
    });
    res.writeHead(up.status, out).end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  r.close = () => new Promise((resolve) => server.close(() => resolve()));
  return r;
}
