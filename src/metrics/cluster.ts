// Metrics under `airlock serve --workers N`. Counters and histograms live in each worker's memory, and a scrape
// reaches whichever worker the kernel hands the connection to; answering from that worker alone would make every
// counter jump between workers' values (a reset, to Prometheus). So the answering worker asks the primary, which
// gathers every worker's registry with prom-client's AggregatorRegistry and sums them (the store gauges take the
// max instead: each worker reads the same rows).
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

const REQUEST = 'airlock:metrics-request';
const ANSWER = 'airlock:metrics-answer';
const TIMEOUT_MS = 10_000;

interface Request {
  type: typeof REQUEST;
  id: number;
}
interface Answer {
  type: typeof ANSWER;
  id: number;
  contentType?: string;
  body?: string;
  error?: string;
}

/** In the primary: answers a worker's request for the whole group's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: Partial<Request>) => {
    if (message?.type !== REQUEST || typeof message.id !== 'number') return;
    const id = message.id;
    const send = (answer: Omit<Answer, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: ANSWER, id, ...answer } satisfies Answer);
    };
    aggregator.clusterMetrics().then(
      (body) => send({ contentType: aggregator.contentType, body }),
      (err: Error) => send({ error: err.message }),
    );
  });
}

/** In a worker: offers `registry` to the primary's aggregation, and renders the group's metrics by asking it. */
export function clusterRenderer(registry: Registry): () => Promise<{ contentType: string; body: string }> {
  AggregatorRegistry.setRegistries(registry);
  // Constructing one registers the worker's listener for the primary's requests.
  new AggregatorRegistry();
  let next = 0;
  const waiting = new Map<number, (answer: Answer) => void>();
  process.on('message', (message: Partial<Answer>) => {
    if (message?.type !== ANSWER || typeof message.id !== 'number') return;
    waiting.get(message.id)?.(message as Answer);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(
        () => settle({ type: ANSWER, id, error: 'the primary did not answer' }),
        TIMEOUT_MS,
      );
      function settle(answer: Answer) {
        clearTimeout(timer);
        waiting.delete(id);
        if (answer.error !== undefined || answer.body === undefined) {
          reject(new Error(`cluster metrics: ${answer.error ?? 'no body'}`));
        } else resolve({ contentType: answer.contentType ?? registry.contentType, body: answer.body });
      }
      waiting.set(id, settle);
      process.send?.({ type: REQUEST, id } satisfies Request);
    });
}
