// Every MCP tool through the official MCP client (streamable HTTP at /mcp) with generated arguments: wrong types, huge
// strings, unicode, nested objects, missing and extra fields, negative and huge amounts, path-traversal ids. The
// server must keep answering, every answer must be a tool result or a clear error, never a 5xx, and nothing may
// reach Stripe that the ledger does not hold.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type CallToolResult, McpError } from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS } from '../../src/mcp/tools.ts';
import { everyUpstreamWriteIsLedgered } from '../helpers/ledger.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const RUNS = Number(process.env['AIRLOCK_FUZZ_RUNS'] ?? 300);
// A long run (docs/RELIABILITY.md) on a busy machine must not be cut short by a timeout sized for the default.
const timeout = (ms: number) => ms + RUNS * 1000;

let stack: Stack;
let client: Client;
/** Every HTTP status the MCP client saw from /mcp. */
const statuses: number[] = [];
/** Action ids the tools named, fed back as arguments so some calls reach real actions. */
const seenActions: string[] = ['act_missing'];
let chargeIds: string[] = [];

/** What answers look like when something broke inside rather than refusing bad input. */
const CRASH =
  /Internal error|TypeError|ReferenceError|RangeError|Cannot read prop|is not a function|\n\s+at /;

beforeAll(async () => {
  stack = await startStack();
  chargeIds = [];
  for (let i = 0; i < 3; i++) {
    const ch = await stack.direct.charges.create(
      { amount: 100_000, currency: 'usd', source: 'tok_visa' },
      { idempotencyKey: `seed-mcp-fuzz-${i}` },
    );
    chargeIds.push(ch.id);
  }
  client = new Client({ name: 'fuzz-agent', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${stack.airlock.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${stack.agentKey}` } },
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        statuses.push(res.status);
        return res;
      },
    }),
  );
});
afterAll(async () => {
  await client?.close();
  await stack?.close();
});

// --- generated values ---------------------------------------------------------------------------------------------

const traversal = fc.constantFrom(
  '../../etc/passwd',
  'act_../../v1/payouts',
  'act_..%2F..%2Fapi%2Factions',
  'act_%00',
  'ch_../../refunds',
  'cus_\u0000',
  '/v1/../api/actions',
  '/v1/refunds/../../mcp',
  '/v1/%2e%2e/api/decisions',
  '/v1//refunds',
  '/v1/refunds?amount=1',
  '/v1/refunds#x',
  '/v2/../../api/actions',
  '__proto__',
  'constructor',
  '\u202e\u200b',
  '🙂'.repeat(300),
);
const hugeString = fc.constantFrom('x'.repeat(70_000), 'é'.repeat(20_000), '\u0000'.repeat(5_000));
const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  traversal,
  hugeString,
);
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(
    -1,
    0,
    1,
    100,
    60_000,
    -60_000,
    1.5,
    1e21,
    -1e21,
    Number.MAX_SAFE_INTEGER,
    2 ** 53 + 2,
    1e308,
  ),
);
const deepObject = fc.integer({ min: 20, max: 400 }).map((depth) => {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
});
const anything: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  hostileNumber,
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(hostileString, hostileNumber), { maxLength: 5 }),
  fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber, fc.constant(null)), { maxKeys: 5 }),
  deepObject,
  fc.jsonValue({ maxDepth: 3 }),
);
const oneOf = <T>(values: () => T[]) =>
  fc.integer({ min: 0, max: 1000 }).map((i) => values()[i % values().length]!);

/** Values that look right for a named parameter, so some calls get past validation and into the engine. */
function plausible(name: string): fc.Arbitrary<unknown> {
  switch (name) {
    case 'amount':
      return fc.oneof(fc.constantFrom(1, 100, 60_000, 10_000_000), hostileNumber);
    case 'currency':
      return fc.constantFrom('usd', 'USD', 'eur', 'us', 'usdd', 'ZZZ', '');
    case 'charge':
    case 'source_transaction':
      return fc.oneof(
        oneOf(() => chargeIds),
        fc.constantFrom('ch_missing'),
      );
    case 'payment_intent':
      return fc.constantFrom('pi_missing', 'pi_');
    case 'customer':
      return fc.constantFrom('cus_missing', 'cus_x');
    case 'subscription':
      return fc.constantFrom('sub_missing', 'sub_1');
    case 'destination':
    case 'stripe_account':
      return fc.constantFrom('acct_missing', 'acct_1', 'ba_1');
    case 'id':
      return oneOf(() => seenActions);
    case 'method':
      return fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'get', '');
    case 'path':
      return fc.constantFrom(
        '/v1/refunds',
        '/v1/payouts',
        '/v1/customers',
        '/v1/balance',
        '/v2/core/events',
        '/v1/x',
      );
    case 'params':
    case 'context':
    case 'metadata':
      return fc.dictionary(fc.oneof(fc.string(), traversal), anything, { maxKeys: 6 });
    case 'intent':
      return fc.record(
        {
          kind: fc.oneof(
            fc.constantFrom('refund.create', 'payout.create', 'subscription.cancel'),
            hostileString,
          ),
          amount: hostileNumber,
          currency: fc.constantFrom('usd', 'x', ''),
          metadata: fc.dictionary(fc.string(), anything, { maxKeys: 3 }),
          extra: anything,
        },
        { requiredKeys: [] },
      );
    // A valid long wait on a held action would only make the run slow; the limits themselves are fuzzed.
    case 'timeout_seconds':
    case 'wait':
      return fc.constantFrom(0, 1, -1, 301, 1.5, 1e9, '5');
    case 'limit':
      return fc.constantFrom(1, 100, 0, 101, -5, 2.5);
    default:
      return fc.oneof(hostileString, fc.boolean());
  }
}

/** Arguments for one tool: each known field plausible, hostile or missing, plus unknown fields. */
function argumentsFor(properties: string[]): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const p of properties) fields[p] = fc.oneof({ weight: 3, arbitrary: plausible(p) }, anything);
  return fc
    .tuple(
      fc.record(fields, { requiredKeys: [] }),
      fc.dictionary(fc.oneof(fc.string(), traversal), anything, { maxKeys: 3 }),
      fc.boolean(),
    )
    .map(([known, extra, addExtra]) => (addExtra ? { ...extra, ...known } : known));
}

/** Calls that would succeed, for the tools that move money or ask for decisions, with at most one field spoilt. */
function nearlyValid(name: string, properties: string[]): fc.Arbitrary<Record<string, unknown>> | null {
  const refund = fc.record({ charge: oneOf(() => chargeIds), amount: fc.integer({ min: 1, max: 200 }) });
  const base: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
    create_refund: refund,
    stripe_request: refund.map((params) => ({ method: 'POST', path: '/v1/refunds', params })),
    request_decision: fc.record({
      intent: fc.record({
        kind: fc.constantFrom('refund.create', 'payout.create'),
        amount: fc.integer({ min: 1, max: 100_000 }),
        currency: fc.constant('usd'),
      }),
    }),
    create_customer: fc.record({ email: fc.emailAddress() }),
  };
  const valid = base[name];
  if (!valid) return null;
  return fc
    .tuple(valid, fc.option(fc.tuple(fc.constantFrom(...properties, 'unknown_field'), anything)))
    .map(([args, spoil]) => (spoil ? { ...args, [spoil[0]]: spoil[1] } : args));
}

// --- the checks ---------------------------------------------------------------------------------------------------

function text(r: CallToolResult): string {
  return r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

/** One call: a tool result (possibly isError with a message) or a JSON-RPC error, never a crash or a 5xx. */
async function callAndCheck(
  name: string,
  args: Record<string, unknown>,
): Promise<'ok' | 'tool_error' | 'rpc_error' | 'http_refusal'> {
  try {
    const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
    expect(Array.isArray(result.content)).toBe(true);
    const said = text(result);
    expect(said.length).toBeGreaterThan(0);
    expect(said).not.toMatch(CRASH);
    const structured = (result.structuredContent ?? {}) as { http_status?: number; action?: string | null };
    // Airlock's own answer behind the tool: a 4xx refusal is fine, a 5xx is a bug.
    expect(structured.http_status ?? 200).toBeLessThan(500);
    if (typeof structured.action === 'string' && !seenActions.includes(structured.action)) {
      seenActions.push(structured.action);
    }
    return result.isError ? 'tool_error' : 'ok';
  } catch (err) {
    // Fastify refuses a JSON body with a `__proto__` key before MCP sees it (prototype-poisoning guard): a 400
    // carrying a JSON-RPC parse error that names the forbidden key. A refusal, not a crash; counted apart.
    if (err instanceof StreamableHTTPError && err.code !== undefined && err.code >= 400 && err.code < 500) {
      expect(err.message).toMatch(
        /"jsonrpc":"2.0","error":\{"code":-32700,"message":"[^}]*forbidden key[^}]*__proto__/,
      );
      return 'http_refusal';
    }
    expect(err, `${name} threw ${String(err)}`).toBeInstanceOf(McpError);
    const e = err as McpError;
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.message).not.toMatch(CRASH);
    expect(e.code).not.toBe(-32603);
    return 'rpc_error';
  }
}

describe('MCP tools under generated arguments', () => {
  it('the client sees exactly the tools Airlock defines, so the fuzzing below covers all of them', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS.map((t) => t.name).sort());
  });

  it(
    'answers every tool call with a result or a clear error, never a 5xx, and writes nothing unledgered',
    async () => {
      const { tools } = await client.listTools();
      const perTool = tools.map((t) => {
        const properties = Object.keys(t.inputSchema.properties ?? {});
        const near = nearlyValid(t.name, properties);
        return {
          name: t.name,
          args: near ? fc.oneof(argumentsFor(properties), near) : argumentsFor(properties),
        };
      });
      const outcomes: Record<string, number> = {};
      const calledTools = new Set<string>();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            ...perTool.map((t) => t.args.map((args) => ({ name: t.name, args }))),
            // Unknown tool names, including ones that would approve.
            fc.record({
              name: fc.oneof(
                fc.constantFrom('approve_action', 'reject_action', '', '__proto__'),
                hostileString,
              ),
              args: fc.dictionary(fc.string(), anything, { maxKeys: 3 }),
            }),
          ),
          async ({ name, args }) => {
            const outcome = await callAndCheck(name, args);
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
            calledTools.add(name);
          },
        ),
        { numRuns: RUNS * 2 },
      );
      console.log('MCP fuzz outcomes', outcomes);
      // The run exercised every tool and got past validation into the engine sometimes.
      for (const t of tools) expect(calledTools).toContain(t.name);
      expect(outcomes['ok'] ?? 0).toBeGreaterThan(0);
      expect((outcomes['tool_error'] ?? 0) + (outcomes['rpc_error'] ?? 0)).toBeGreaterThan(0);
      expect(statuses.filter((s) => s >= 500)).toEqual([]);
      // Still answering, and nothing went upstream unrecorded.
      expect((await client.listTools()).tools.length).toBe(TOOLS.length);
      expect((await fetch(`${stack.airlock.url}/readyz`)).status).toBe(200);
      const writes = await everyUpstreamWriteIsLedgered(stack);
      console.log(`MCP fuzz: ${writes} writes upstream, each held by the ledger`);
      // Writes did go upstream (allowed refunds), so the check above had something to check.
      expect(writes).toBeGreaterThan(0);
      expect(stack.sandbox.list('refund').length).toBeGreaterThan(0);
      // No tool can decide: every action the fuzzing made that was held is still held, cancelled or expired.
      for (const id of seenActions.filter((a) => a !== 'act_missing')) {
        const action = await stack.airlock.store.getAction(id);
        const outcome = action ? (JSON.parse(action.decision) as { outcome?: string }).outcome : null;
        if (outcome === 'review') {
          expect(['awaiting_approval', 'cancelled', 'expired']).toContain(action!.status);
        }
      }
    },
    timeout(240_000),
  );

  it(
    'answers raw JSON-RPC of any shape on /mcp with a JSON-RPC answer, never a 5xx',
    async () => {
      const headers = {
        authorization: `Bearer ${stack.agentKey}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      };
      const message = fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.record(
          {
            jsonrpc: fc.constantFrom('2.0', '1.0', 2),
            id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.object()),
            method: fc.oneof(
              fc.constantFrom('tools/call', 'tools/list', 'initialize', 'resources/list'),
              fc.string(),
            ),
            params: fc.oneof(
              anything,
              fc.record({ name: fc.constantFrom(...TOOLS.map((t) => t.name)), arguments: anything }),
            ),
          },
          { requiredKeys: [] },
        ),
      );
      await fc.assert(
        fc.asyncProperty(fc.oneof(message, fc.array(message, { maxLength: 4 })), async (body) => {
          const res = await fetch(`${stack.airlock.url}/mcp`, {
            method: 'POST',
            headers,
            body: JSON.stringify(body),
          });
          const answer = await res.text();
          expect(res.status, answer).toBeLessThan(500);
          // 202 acknowledges notifications and responses; everything else carries a JSON-RPC body.
          if (res.status !== 202 && answer) {
            const parsed = JSON.parse(answer) as unknown;
            const messages = Array.isArray(parsed) ? parsed : [parsed];
            for (const m of messages as { jsonrpc?: string; error?: { message?: string } }[]) {
              expect(m.jsonrpc === '2.0' || typeof (m as { error?: unknown }).error === 'object').toBe(true);
              if (m.error) expect(m.error.message ?? '').not.toMatch(CRASH);
            }
          }
        }),
        { numRuns: RUNS },
      );
      expect((await client.listTools()).tools.length).toBe(TOOLS.length);
      await everyUpstreamWriteIsLedgered(stack);
    },
    timeout(120_000),
  );
});
