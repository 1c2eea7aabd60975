// The load generator, always in its own process so it never shares an event loop with what it measures.
// Usage: node --import tsx bench/loadgen.ts '<LoadSpec as JSON>'  → one line of LoadResult JSON on stdout.
//
// Two modes:
// - max: autocannon with a fixed number of connections, each sending its next request as soon as the previous
//   answers: the most the target serves.
// - rate: a fixed arrival rate, paced here (a tick per millisecond sends every request whose time has come) over
//   a fixed set of kept-alive connections, one request per connection at a time. autocannon's own --overallRate gives each connection a
//   per-second quota that it spends back to back at the top of every second, so its latency is that of a burst at
//   full concurrency, not of a steady rate. A request sent on time is timed from its send; one held back because
//   every connection was busy (the target cannot keep up) from when it was due, so its wait counts, as in wrk2.
// Every request carries a distinct Idempotency-Key (and for refunds, by default, a distinct charge), as a real
// agent's would; latencies are recorded in microseconds from each response, not autocannon's whole milliseconds.
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import autocannon from 'autocannon';

/**
 * refund: POST /v1/refunds ($1). decision: POST /api/decisions (the suite's (e): $1-$5, 5,000 customers in turn).
 * decision-allow / decision-held: POST /api/decisions for $1 / $600 with a new customer each, so no customer
 * window holds a $1 intent. approve: POST /api/actions/:id/approve, one held action of `ids` per request.
 * read: GET /v1/charges/:id, a new charge each.
 */
export type Scenario = 'refund' | 'decision' | 'decision-allow' | 'decision-held' | 'approve' | 'read';

export interface LoadSpec {
  url: string;
  /**
   * For a max run: several targets (instances behind no load balancer) sharing the connections evenly and one
   * request sequence, so agents' requests are spread over all of them; `url` is then ignored.
   */
  urls?: string[];
  scenario: Scenario;
  /** Bearer credential: a Stripe test key for the baselines, Airlock agent keys for Airlock (comma-separated:
   * requests take them in turn, as several agents would). */
  key: string;
  connections: number;
  seconds: number;
  /** Requests per second for a fixed-rate run; absent for a max-throughput run. */
  rate?: number;
  /** unique: every refund names a new charge (Airlock looks each up); fixed: one charge for all. */
  charges?: 'unique' | 'fixed';
  /** approve: a file of held action ids, one a line; each request approves the next. */
  ids?: string;
  tag: string;
}

export interface LoadResult {
  requests: number;
  /** Answers other than 2xx, socket errors and timeouts. */
  errors: number;
  /** Completed 2xx answers per second of the run. */
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
  /** For a rate run: the rate asked for, and whether the target answered at least 95% of it in time. */
  rate: number | null;
  sustained: boolean | null;
  statuses: Record<string, number>;
}

interface Req {
  method: 'POST' | 'GET';
  path: string;
  headers: Record<string, string>;
  body: string;
}

function requestMaker(spec: LoadSpec): (i: number) => Req {
  const prefix = `${spec.tag}-${process.pid.toString(36)}-${Date.now().toString(36)}`;
  const auths = spec.key.split(',').map((k) => `Bearer ${k}`);
  const auth = (i: number) => auths[i % auths.length]!;
  if (spec.scenario === 'decision') {
    return (i) => ({
      method: 'POST',
      path: '/api/decisions',
      headers: { authorization: auth(i), 'content-type': 'application/json' },
      body: JSON.stringify({
        intent: { kind: 'refund.create', amount: 100 + (i % 400), currency: 'usd' },
        context: { customer: `cus_bench${i % 5000}` },
        summary: 'Refund a duplicate charge',
        idempotency_key: `${prefix}-${i}`,
      }),
    });
  }
  const alnum = prefix.replace(/[^A-Za-z0-9]/g, '');
  if (spec.scenario === 'decision-allow' || spec.scenario === 'decision-held') {
    // $1 is allowed at once by small_refund; $600 is held by large_refund (bench/policy.yaml).
    const amount = spec.scenario === 'decision-allow' ? 100 : 60_000;
    return (i) => ({
      method: 'POST',
      path: '/api/decisions',
      headers: { authorization: auth(i), 'content-type': 'application/json' },
      body: JSON.stringify({
        intent: { kind: 'refund.create', amount, currency: 'usd' },
        context: { customer: `cus_${alnum}x${i.toString(36)}` },
        summary: 'Refund a duplicate charge',
        idempotency_key: `${prefix}-${i}`,
      }),
    });
  }
  if (spec.scenario === 'approve') {
    const ids = readFileSync(spec.ids!, 'utf8').split('\n').filter(Boolean);
    // Past the last id the calls repeat earlier approvals: they answer 409 and show as errors.
    return (i) => ({
      method: 'POST',
      path: `/api/actions/${ids[i % ids.length]}/approve`,
      headers: { authorization: auth(i), 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'bench' }),
    });
  }
  if (spec.scenario === 'read') {
    return (i) => ({
      method: 'GET',
      path: `/v1/charges/ch_${alnum}x${i.toString(36)}`,
      headers: { authorization: auth(i) },
      body: '',
    });
  }
  return (i) => ({
    method: 'POST',
    path: '/v1/refunds',
    headers: {
      authorization: auth(i),
      'content-type': 'application/x-www-form-urlencoded',
      'idempotency-key': `${prefix}-${i}`,
    },
    body: `charge=${spec.charges === 'fixed' ? 'ch_benchfixed' : `ch_${alnum}x${i.toString(36)}`}&amount=100&metadata[order]=${i}`,
  });
}

function quantiles(samples: Float64Array, count: number) {
  const sorted = samples.slice(0, count).sort();
  const q = (p: number) => (count === 0 ? 0 : sorted[Math.min(count - 1, Math.floor(p * count))]!);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i]!;
  return {
    p50: q(0.5),
    p99: q(0.99),
    p999: q(0.999),
    mean: count ? sum / count : 0,
    max: count ? sorted[count - 1]! : 0,
  };
}

class Samples {
  data = new Float64Array(1 << 16);
  n = 0;
  push(ms: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = ms;
  }
}

async function maxRun(spec: LoadSpec): Promise<LoadResult> {
  const make = requestMaker(spec);
  let i = 0;
  const ok = new Samples();
  const statuses: Record<string, number> = {};
  const urls = spec.urls?.length ? spec.urls : [spec.url];
  const runs = urls.map((url, u) => {
    // Without a callback autocannon returns its tracker (an EventEmitter) made thenable.
    const instance = autocannon({
      url,
      connections: Math.floor(spec.connections / urls.length) + (u < spec.connections % urls.length ? 1 : 0),
      duration: spec.seconds,
      timeout: 30,
      requests: [
        {
          setupRequest: (req) => {
            const r = make(i++);
            return {
              ...req,
              method: r.method,
              path: r.path,
              headers: r.headers,
              ...(r.method === 'GET' ? {} : { body: r.body }),
            };
          },
        },
      ],
    }) as unknown as autocannon.Instance & Promise<autocannon.Result>;
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) ok.push(ms);
    });
    return instance;
  });
  const all = await Promise.all(runs);
  const result = {
    errors: all.reduce((a, r) => a + r.errors, 0),
    timeouts: all.reduce((a, r) => a + r.timeouts, 0),
    duration: Math.max(...all.map((r) => r.duration)),
  };
  const non2xx = Object.entries(statuses)
    .filter(([s]) => !s.startsWith('2'))
    .reduce((a, [, c]) => a + c, 0);
  return {
    requests: ok.n + non2xx,
    errors: non2xx + result.errors + result.timeouts,
    rps: ok.n / (result.duration || spec.seconds),
    ...quantiles(ok.data, ok.n),
    rate: null,
    sustained: null,
    statuses,
  };
}

/**
 * A kept-alive HTTP/1.1 connection sending prebuilt requests one at a time, at little CPU per request: with
 * undici's per-request work the generator itself fell behind at 2,000 req/s on a 2-core machine.
 */
class RawConnection {
  #socket!: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #resolve: ((status: number) => void) | null = null;
  #reject: ((err: Error) => void) | null = null;
  #closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    this.#connect();
  }

  #connect(): void {
    this.#buf = Buffer.alloc(0);
    this.#socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.#socket.on('data', (d: Buffer) => this.#data(d));
    this.#socket.on('error', (e) => this.#fail(e));
    // A server closing a kept-alive connection: fail what was in flight and dial again.
    this.#socket.on('close', () => {
      this.#fail(new Error('connection closed'));
      if (!this.#closed) this.#connect();
    });
  }

  send(request: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#socket.write(request);
    });
  }

  #fail(err: Error): void {
    const reject = this.#reject;
    this.#resolve = this.#reject = null;
    reject?.(err);
  }

  #data(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    const headEnd = this.#buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.#buf.toString('latin1', 0, headEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let end: number;
    if (length) end = headEnd + 4 + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const last = this.#buf.indexOf('\r\n0\r\n\r\n', headEnd + 2);
      if (last < 0) return;
      end = last + 7;
    } else end = headEnd + 4;
    if (this.#buf.length < end) return;
    this.#buf = this.#buf.subarray(end);
    const resolve = this.#resolve;
    this.#resolve = this.#reject = null;
    resolve?.(Number(head.slice(9, 12)));
  }

  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }
}

function requestBuffer(r: Req, host: string): Buffer {
  const body = Buffer.from(r.body);
  const headers = Object.entries({ ...r.headers, host, 'content-length': String(body.length) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from(`${r.method} ${r.path} HTTP/1.1\r\n${headers}\r\n`), body]);
}

async function rateRun(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.rate!;
  const make = requestMaker(spec);
  const url = new URL(spec.url);
  const idle = Array.from(
    { length: spec.connections },
    () => new RawConnection(url.hostname, Number(url.port)),
  );
  const all = [...idle];
  const ok = new Samples();
  const statuses: Record<string, number> = {};
  let errors = 0;
  let issued = 0;
  let inflight = 0;
  const start = performance.now();
  const end = start + spec.seconds * 1000;
  const total = Math.round(rate * spec.seconds);
  let stopped = false;
  let drained: () => void = () => {};
  const send = (n: number, conn: RawConnection) => {
    const buffer = requestBuffer(make(n), url.host);
    const t0 = performance.now();
    const scheduled = start + (n * 1000) / rate;
    // Sent on time: timed from the send. Held back because every connection was busy (the target is behind):
    // timed from when it should have gone, so the wait counts, as in wrk2.
    const from = t0 - scheduled > 2 ? scheduled : t0;
    inflight++;
    conn
      .send(buffer)
      .then((status) => {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) ok.push(performance.now() - from);
        else errors++;
      })
      .catch(() => {
        errors++;
      })
      .finally(() => {
        inflight--;
        idle.push(conn);
        if (!stopped) pump();
        else if (inflight === 0) drained();
      });
  };
  // One request per connection at a time; the rest wait for a free connection, late.
  const pump = () => {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    while (issued < due && idle.length > 0) send(issued++, idle.pop()!);
  };
  await new Promise<void>((resolve) => {
    const tick = () => {
      pump();
      if (performance.now() >= end || issued >= total) {
        stopped = true;
        return resolve();
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const late = total - issued;
  if (inflight > 0) {
    await Promise.race([
      new Promise<void>((r) => {
        drained = r;
      }),
      new Promise<void>((r) => setTimeout(r, 30_000).unref()),
    ]);
  }
  errors += inflight;
  const elapsed = (performance.now() - start) / 1000;
  for (const c of all) c.close();
  return {
    requests: issued,
    errors,
    rps: ok.n / Math.max(spec.seconds, elapsed),
    ...quantiles(ok.data, ok.n),
    rate,
    // Sustained: every scheduled request was sent (none still waiting for a connection at the end) and nearly
    // all were answered 2xx.
    sustained: late === 0 && ok.n >= 0.95 * total,
    statuses,
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const result = spec.rate ? await rateRun(spec) : await maxRun(spec);
process.stdout.write(`${JSON.stringify(result)}\n`);
