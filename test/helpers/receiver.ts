import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers each request; the default answers 200 with a small JSON body. null: never answer (a hung endpoint). */
  respond: (
    r: Received,
    n: number,
  ) => { status: number; body?: unknown; headers?: Record<string, string> } | null;
  close(): Promise<void>;
}

/** A real HTTP server standing in for a third-party API or a callback endpoint. */
export async function startReceiver(): Promise<Receiver> {
  const r: Receiver = {
    url: '',
    port: 0,
    received: [],
    respond: () => ({ status: 200, body: { ok: true } }),
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const got: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      r.received.push(got);
      const answer = r.respond(got, r.received.length);
      if (answer === null) return;
      res.writeHead(answer.status, { 'content-type': 'application/json', ...(answer.headers ?? {}) });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}`;
  r.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      // Requests left unanswered on purpose would otherwise keep the server open.
      server.closeAllConnections();
    });
  return r;
}
