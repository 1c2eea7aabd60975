// Every repository of src/store/, and the database's own checks (migration 0014), run over both stores as Kysely's
// tests run over every dialect. Each test makes its own rows, so they share one store per dialect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COUNTED_STATUSES } from '../../src/engine/status.ts';
import { newId, sha256Hex } from '../../src/ids.ts';
import type { ActionRow } from '../../src/store/actions.ts';
import type { ApprovalRow } from '../../src/store/approvals.ts';
import type { DigestRow } from '../../src/store/digests.ts';
import { ledgerHash } from '../../src/store/ledger.ts';
import type { CallbackRow, NotificationRow } from '../../src/store/outbox.ts';
import { OutboxQueue } from '../../src/store/outbox.ts';
import { STATUSES, type Status } from '../../src/store/status.ts';
import type { Store } from '../../src/store/store.ts';
import { actionRow as sharedActionRow } from '../helpers/action-row.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from './databases.ts';

const T0 = Date.parse('2031-03-01T00:00:00.000Z');
const at = (ms = 0) => new Date(T0 + ms).toISOString();

/** A held $10 refund written at T0, expiring an hour later. */
function actionRow(over: Partial<ActionRow> = {}): ActionRow {
  return sharedActionRow({ created_at: at(), expires_at: at(3_600_000), ...over });
}

function vote(action: ActionRow, over: Partial<ApprovalRow> = {}): ApprovalRow {
  return {
    id: newId('apv'),
    action_id: action.id,
    reviewer_id: 'rev_a',
    reviewer_email: 'a@example.com',
    decision: 'approve',
    note: null,
    changes: null,
    bound_hash: action.request_hash,
    at: at(),
    agent_id: action.agent_id,
    ...over,
  };
}

function callback(actionId: string, over: Partial<CallbackRow> = {}): CallbackRow {
  return {
    id: newId('cb'),
    action_id: actionId,
    type: 'action.rejected',
    url: 'https://hooks.example.com/airlock',
    payload: '{}',
    attempts: 0,
    next_attempt_at: at(),
    delivered_at: null,
    gave_up_at: null,
    last_status: null,
    last_error: null,
    lease_until: null,
    created_at: at(),
    ...over,
  };
}

function notification(
  actionId: string,
  recipient: string,
  over: Partial<NotificationRow> = {},
): NotificationRow {
  return {
    id: newId('ntf'),
    action_id: actionId,
    event: 'review_requested',
    version: 'v1',
    channel: 'email',
    recipient,
    reviewer_id: null,
    payload: null,
    status: 'queued',
    attempts: 0,
    next_attempt_at: at(),
    delivered_at: null,
    gave_up_at: null,
    last_status: null,
    last_error: null,
    lease_until: null,
    created_at: at(),
    ...over,
  };
}

/** The database's refusal, whichever driver words it: a CHECK (PostgreSQL) or the trigger's (SQLite). */
const CHECK_FAILED = /check constraint|actions_status_check|not a known status/i;
const UNIQUE_FAILED = /unique|duplicate key/i;

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`repositories on ${dialect}`, () => {
    let t: TestStore;
    let store: Store;

    beforeAll(async () => {
      t = await openTestStore(dialect);
      store = t.store;
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    async function storedAction(over: Partial<ActionRow> = {}): Promise<ActionRow> {
      const row = actionRow(over);
      await store.actions.insert(row);
      return row;
    }

    describe('the database checks', () => {
      it('refuses an action with a status nobody knows, on insert and on update', async () => {
        await expect(store.actions.insert(actionRow({ status: 'paused' as Status }))).rejects.toThrow(
          CHECK_FAILED,
        );
        const row = await storedAction();
        await expect(store.actions.transition(row.id, row.status, 'paused' as Status, {})).rejects.toThrow(
          CHECK_FAILED,
        );
        expect((await store.actions.get(row.id))!.status).toBe('awaiting_approval');
      });

      it('accepts every status the code knows (a new one needs a migration that widens the check)', async () => {
        const ids: string[] = [];
        for (const status of STATUSES) ids.push((await storedAction({ status })).id);
        for (const [i, id] of ids.entries()) expect((await store.actions.get(id))!.status).toBe(STATUSES[i]);
      });

      it('refuses a second vote by the same reviewer on the same version, not another reviewer’s', async () => {
        const action = await storedAction();
        await store.approvals.insert(vote(action));
        await expect(store.approvals.insert(vote(action, { decision: 'reject' }))).rejects.toThrow(
          UNIQUE_FAILED,
        );
        await store.approvals.insert(vote(action, { reviewer_id: 'rev_b', reviewer_email: 'b@example.com' }));
        expect((await store.approvals.listForAction(action.id)).map((v) => v.reviewer_id).sort()).toEqual([
          'rev_a',
          'rev_b',
        ]);
      });
    });

    describe('actions', () => {
      it('moves an action only from the status it names, and returns the moved row', async () => {
        const row = await storedAction();
        expect(await store.actions.transition(row.id, 'pending', 'completed', {})).toBeUndefined();
        const moved = await store.actions.transition(row.id, 'awaiting_approval', 'pending', {
          approvals_required: 2,
          updated_at: at(1),
        });
        expect(moved).toMatchObject({
          id: row.id,
          status: 'pending',
          approvals_required: 2,
          updated_at: at(1),
        });
        expect(await store.actions.get(row.id)).toEqual(moved);
      });

      it('updates columns in place only while the status is still the one named, and never the status', async () => {
        const row = await storedAction();
        expect(await store.actions.updateIn(row.id, 'pending', { last_error: 'x' })).toBe(false);
        expect(await store.actions.updateIn(row.id, 'awaiting_approval', { last_error: 'x' })).toBe(true);
        expect((await store.actions.get(row.id))!.last_error).toBe('x');
        // A patch typed wider than ActionPatch cannot smuggle a status change in.
        const smuggled = { last_error: 'y', status: 'completed' } as { last_error: string };
        await expect(store.actions.updateIn(row.id, 'awaiting_approval', smuggled)).rejects.toThrow(
          /transition/,
        );
        await expect(
          store.actions.transition(row.id, 'awaiting_approval', 'rejected', smuggled),
        ).rejects.toThrow(/transition/);
        expect(await store.actions.get(row.id)).toMatchObject({
          status: 'awaiting_approval',
          last_error: 'x',
        });
      });

      it('finds an action by its idempotency scope', async () => {
        const scope = newId('scope');
        const row = await storedAction({ idempotency_scope: scope });
        expect(await store.actions.hasScope(scope)).toBe(true);
        expect((await store.actions.findByScope(scope))!.id).toBe(row.id);
        expect(await store.actions.hasScope(newId('scope'))).toBe(false);
      });

      it('leases a due pending action to one dispatcher, and lets only the holder release it', async () => {
        const row = await storedAction({ status: 'pending', created_at: at(-1), updated_at: at(-60_000) });
        expect(await store.actions.listDispatchable(at(), 10_000)).toContain(row.id);
        expect(await store.actions.claim(row.id, 'disp_a', at(), at(5_000))).toBe(true);
        expect(await store.actions.claim(row.id, 'disp_b', at(1), at(5_000))).toBe(false);
        expect(await store.actions.listDispatchable(at(1), 10_000)).not.toContain(row.id);
        expect(await store.actions.listLeasedBy('disp_a')).toEqual([row.id]);
        expect(await store.actions.releaseLease(row.id, 'disp_b', {})).toBe(false);
        expect(await store.actions.releaseLease(row.id, 'disp_a', { last_error: 'retry' })).toBe(true);
        expect(await store.actions.get(row.id)).toMatchObject({
          lease_owner: null,
          attempts: 1,
          last_error: 'retry',
        });
      });

      it('lists expired holds, and pages actions newest first by status and agent', async () => {
        const agent = await store.credentials.findOrCreateAgent(newId('agt'), newId('bot'), at());
        const rows = [];
        for (let i = 0; i < 5; i++) {
          rows.push(
            await storedAction({ agent_id: agent.id, created_at: at(i), expires_at: at(10 * i - 10) }),
          );
        }
        const expired = await store.actions.listExpiredHolds(at(1), 1000);
        expect(rows.filter((r) => expired.includes(r.id)).map((r) => r.id)).toEqual([
          rows[0]!.id,
          rows[1]!.id,
        ]);
        const first = await store.actions.list({ status: 'awaiting_approval', agentId: agent.id, limit: 3 });
        expect(first.rows.map((r) => r.id)).toEqual([rows[4]!.id, rows[3]!.id, rows[2]!.id]);
        expect(first.hasMore).toBe(true);
        const next = await store.actions.list({ agentId: agent.id, limit: 3, startingAfter: rows[2]!.id });
        expect(next.rows.map((r) => r.id)).toEqual([rows[1]!.id, rows[0]!.id]);
        expect(next.hasMore).toBe(false);
        expect((await store.actions.list({ status: 'failed', agentId: agent.id, limit: 3 })).rows).toEqual(
          [],
        );
      });

      it('pages the writes of a time range for a simulation, and what changed since for an export', async () => {
        const base = T0 + 86_400_000;
        const iso = (ms: number) => new Date(base + ms).toISOString();
        const write = await storedAction({ created_at: iso(0), updated_at: iso(10) });
        await storedAction({ created_at: iso(1), updated_at: iso(11), read: 1 });
        const later = await storedAction({ created_at: iso(2), updated_at: iso(12) });
        const page = await store.actions.writesCreatedBetween(iso(0), iso(3), null, 1);
        expect(page.map((r) => r.id)).toEqual([write.id]);
        const rest = await store.actions.writesCreatedBetween(iso(0), iso(3), page[0]!, 10);
        expect(rest.map((r) => r.id)).toEqual([later.id]);
        const changed = await store.actions.changedSince(iso(11), null, 10);
        expect(changed.map((r) => r.id)).toContain(later.id);
        expect(changed.map((r) => r.id)).not.toContain(write.id);
        expect(Object.keys(changed[0]!)).not.toContain('params');
      });

      it("lists a customer's earlier actions on one account, newest first, without the one asked about, bounded", async () => {
        const cus = newId('cus');
        const iso = (ms: number) => new Date(T0 + 2 * 86_400_000 + ms).toISOString();
        const first = await storedAction({ customer: cus, created_at: iso(0), status: 'completed' });
        const second = await storedAction({ customer: cus, created_at: iso(1), status: 'rejected' });
        const current = await storedAction({ customer: cus, created_at: iso(2) });
        await storedAction({ customer: cus, created_at: iso(3), on_account: 'acct_other' });
        await storedAction({ customer: newId('cus'), created_at: iso(4) });
        const rows = await store.actions.forCustomer(cus, null, current.id, 10);
        expect(rows.map((r) => [r.id, r.status])).toEqual([
          [second.id, 'rejected'],
          [first.id, 'completed'],
        ]);
        expect(Object.keys(rows[0]!).sort()).toEqual([
          'amount',
          'created_at',
          'currency',
          'id',
          'kind',
          'status',
        ]);
        expect((await store.actions.forCustomer(cus, null, current.id, 1)).map((r) => r.id)).toEqual([
          second.id,
        ]);
        expect((await store.actions.forCustomer(cus, 'acct_other', current.id, 10)).length).toBe(1);
      });

      it('runs inside the transaction it was reached through: a failed one leaves nothing behind', async () => {
        const row = actionRow();
        const failed = await store
          .transaction(async (tx) => {
            await tx.actions.insert(row);
            await tx.approvals.insert(vote(row));
            // The transaction's own connection sees its writes before the commit.
            expect((await tx.actions.get(row.id))?.id).toBe(row.id);
            throw new Error('boom');
          })
          .catch((e: Error) => e.message);
        expect(failed).toBe('boom');
        expect(await store.actions.get(row.id)).toBeUndefined();
        expect(await store.approvals.listForAction(row.id)).toEqual([]);
      });
    });

    describe('approvals', () => {
      it('lists the votes of one action and of a page of actions, oldest first, and deletes one', async () => {
        const a = await storedAction();
        const b = await storedAction();
        const late = vote(a, { at: at(2) });
        const early = vote(a, { reviewer_id: 'rev_b', at: at(1) });
        const other = vote(b);
        for (const v of [late, early, other]) await store.approvals.insert(v);
        expect((await store.approvals.listForAction(a.id)).map((v) => v.id)).toEqual([early.id, late.id]);
        const both = await store.approvals.listForActions([a.id, b.id]);
        expect(both.map((v) => v.id).sort()).toEqual([early.id, late.id, other.id].sort());
        expect(await store.approvals.listForActions([])).toEqual([]);
        await store.approvals.delete(late.id);
        expect((await store.approvals.listForAction(a.id)).map((v) => v.id)).toEqual([early.id]);
      });

      it('counts the votes on one agent’s actions since a time', async () => {
        const agentId = newId('agt');
        const a = await storedAction({ agent_id: agentId });
        await store.approvals.insert(vote(a, { decision: 'reject', at: at(5) }));
        await store.approvals.insert(vote(a, { reviewer_id: 'rev_b', at: at(6) }));
        await store.approvals.insert(vote(a, { reviewer_id: 'rev_c', at: at(-5) }));
        expect(await store.approvals.votesOnAgent(agentId, at())).toEqual({ rejected: 1, decided: 2 });
        expect(await store.approvals.votesOnAgent(newId('agt'), at())).toEqual({ rejected: 0, decided: 0 });
      });
    });

    describe('ledger', () => {
      it('appends a chain whose hashes link, and reads it by page, by action, by time and by seq', async () => {
        const before = await store.ledger.head();
        const action = await storedAction();
        const stamp = at(7_000_000);
        await store.transaction(async (tx) => {
          await tx.ledger.append([
            {
              actionId: action.id,
              type: 'test.a',
              from: null,
              to: 'received',
              actor: 't',
              data: { n: 1 },
              at: stamp,
            },
            { actionId: null, type: 'test.b', from: null, to: null, actor: 't', data: {}, at: stamp },
          ]);
        });
        // An action's events read at once, sealed or not; on PostgreSQL the chain takes them when sealed.
        const written = await store.ledger.forAction(action.id);
        expect(written.map((e) => e.type)).toEqual(['test.a']);
        if (dialect === 'postgres') {
          expect(written[0]).toMatchObject({ seq: null, prev_hash: null, hash: null });
          expect(await store.ledger.head()).toEqual(before);
          expect(await store.ledger.sealPending()).toBe(2);
        }
        const head = await store.ledger.head();
        expect(head.seq).toBe(before.seq + 2);
        const events = await store.ledger.page(before.seq, 10);
        expect(events.map((e) => e.type)).toEqual(['test.a', 'test.b']);
        expect(events[0]!.prev_hash).toBe(before.hash);
        expect(events[1]!.prev_hash).toBe(events[0]!.hash);
        for (const e of events) expect(ledgerHash(e.prev_hash, e)).toBe(e.hash);
        expect(head.hash).toBe(events[1]!.hash);
        expect((await store.ledger.forAction(action.id)).map((e) => e.seq)).toEqual([before.seq + 1]);
        expect(await store.ledger.hashOf(before.seq + 2)).toBe(head.hash);
        expect(await store.ledger.hashOf(head.seq + 1)).toBeUndefined();
        expect(await store.ledger.firstSince(stamp)).toBeLessThanOrEqual(before.seq + 1);
        expect(await store.ledger.firstSince(at(999_999_999_999))).toBeNull();
      });
    });

    describe('credentials', () => {
      it('finds or creates an agent once per name, and reads agents by id, name and list', async () => {
        const name = newId('bot');
        const a = await store.credentials.findOrCreateAgent(newId('agt'), name, at());
        const again = await store.credentials.findOrCreateAgent(newId('agt'), name, at());
        expect(again).toEqual(a);
        expect(await store.credentials.getAgent(a.id)).toEqual(a);
        expect(await store.credentials.agentByName(name)).toEqual(a);
        expect(await store.credentials.agentByName(newId('nobody'))).toBeUndefined();
        expect(await store.credentials.listAgents()).toContainEqual(a);
        expect(await store.credentials.agentsByIds([a.id, 'agt_missing'])).toEqual([a]);
        expect(await store.credentials.agentsByIds([])).toEqual([]);
      });

      it('finds an agent key by its hash with its expiry until it is revoked, once', async () => {
        const agent = await store.credentials.findOrCreateAgent(newId('agt'), newId('bot'), at());
        const keyHash = sha256Hex(newId('key'));
        const id = newId('key');
        await store.credentials.insertAgentKey({
          id,
          agent_id: agent.id,
          key_hash: keyHash,
          prefix: 'ak_abcd',
          created_at: at(),
          expires_at: at(1000),
        });
        expect(await store.credentials.findAgentKey(keyHash)).toEqual({
          agent,
          keyId: id,
          expiresAt: at(1000),
        });
        expect(await store.credentials.listAgentKeys()).toContainEqual({
          id,
          owner: agent.name,
          prefix: 'ak_abcd',
          created_at: at(),
          expires_at: at(1000),
          revoked_at: null,
        });
        expect(await store.credentials.revoke('agent_key', id, at(5))).toBe(true);
        expect(await store.credentials.revoke('agent_key', id, at(6))).toBe(false);
        expect(await store.credentials.findAgentKey(keyHash)).toBeUndefined();
        expect((await store.credentials.listAgentKeys()).find((k) => k.id === id)?.revoked_at).toBe(at(5));
      });

      it('keeps one reviewer per email, updating groups, and finds them by email, token and id', async () => {
        const email = `${newId('r')}@example.com`;
        const first = await store.credentials.upsertReviewer({
          id: newId('rev'),
          email,
          password_hash: 'scrypt$1',
          groups: ['finance'],
          created_at: at(),
        });
        const second = await store.credentials.upsertReviewer({
          id: newId('rev'),
          email,
          password_hash: null,
          groups: ['finance', 'admins'],
          created_at: at(),
        });
        expect(second).toEqual(first);
        const expected = { id: first.id, email, groups: ['finance', 'admins'] };
        expect(await store.credentials.findReviewerByEmail(email)).toEqual(expected);
        // No new password given: the old one stays.
        expect(await store.credentials.reviewerForLogin(email)).toEqual({
          ...expected,
          passwordHash: 'scrypt$1',
        });
        expect(await store.credentials.listReviewers()).toContainEqual(expected);
        expect(await store.credentials.reviewerEmail(first.id)).toBe(email);
        expect(await store.credentials.reviewerEmail('rev_missing')).toBeNull();

        const tokenHash = sha256Hex(newId('rtk'));
        const tokenId = newId('rtk');
        await store.credentials.insertReviewerToken({
          id: tokenId,
          reviewer_id: first.id,
          token_hash: tokenHash,
          created_at: at(),
        });
        expect(await store.credentials.findReviewerToken(tokenHash)).toEqual({
          reviewer: expected,
          expiresAt: null,
        });
        expect(await store.credentials.revoke('reviewer_token', tokenId, at())).toBe(true);
        expect(await store.credentials.findReviewerToken(tokenHash)).toBeUndefined();
      });

      it('finds an admin token by its hash until it is revoked, and lists it without the hash', async () => {
        const tokenHash = sha256Hex(newId('atk'));
        const row = {
          id: newId('atk'),
          name: 'ops',
          token_hash: tokenHash,
          prefix: 'adm_abc',
          created_at: at(),
          expires_at: null,
        };
        await store.credentials.insertAdminToken(row);
        expect(await store.credentials.findAdminToken(tokenHash)).toEqual({
          admin: { id: row.id, name: 'ops' },
          expiresAt: null,
        });
        const listed = (await store.credentials.listAdminTokens()).find((r) => r.id === row.id);
        expect(listed).toEqual({
          id: row.id,
          owner: 'ops',
          prefix: 'adm_abc',
          created_at: at(),
          expires_at: null,
          revoked_at: null,
        });
        expect(await store.credentials.revoke('admin_token', row.id, at())).toBe(true);
        expect(await store.credentials.findAdminToken(tokenHash)).toBeUndefined();
      });
    });

    describe('review sessions and links', () => {
      async function reviewer(): Promise<{ id: string; email: string }> {
        return store.credentials.upsertReviewer({
          id: newId('rev'),
          email: `${newId('r')}@example.com`,
          password_hash: null,
          groups: ['finance'],
          created_at: at(),
        });
      }

      it('keeps a session by its hash with its reviewer, and deletes it', async () => {
        const r = await reviewer();
        const idHash = sha256Hex(newId('s'));
        await store.review.insertSession({
          id_hash: idHash,
          reviewer_id: r.id,
          csrf: 'c1',
          created_at: at(),
          expires_at: at(1000),
        });
        expect(await store.review.findSession(idHash)).toEqual({
          reviewer: { ...r, groups: ['finance'] },
          csrf: 'c1',
          expiresAt: at(1000),
        });
        await store.review.deleteSession(idHash);
        expect(await store.review.findSession(idHash)).toBeUndefined();
      });

      it('spends a batch of links once, gives it back, and keeps one signing key', async () => {
        const r = await reviewer();
        const action = await storedAction();
        const batch = newId('lnb');
        const link = {
          id: newId('lnk'),
          batch_id: batch,
          action_id: action.id,
          reviewer_id: r.id,
          verb: 'approve',
          expires_at: at(1000),
          used_at: null,
          created_at: at(),
        };
        await store.review.insertLink(link);
        await store.review.insertLink({ ...link, id: newId('lnk'), verb: 'reject' });
        expect(await store.review.getLink(link.id)).toEqual(link);
        expect(await store.review.spendBatch(batch, at(1))).toBe(true);
        expect(await store.review.spendBatch(batch, at(2))).toBe(false);
        expect((await store.review.getLink(link.id))!.used_at).toBe(at(1));
        await store.review.unspendBatch(batch);
        expect(await store.review.spendBatch(batch, at(3))).toBe(true);

        const keys = await Promise.all([1, 2, 3].map((i) => store.review.linkKey(() => `secret-${i}`)));
        expect(new Set(keys).size).toBe(1);
        expect(await store.review.linkKey(() => 'another')).toBe(keys[0]);
      });
    });

    describe('freezes', () => {
      it('sets a freeze, replaces its reason when set again, and lifts it once', async () => {
        const scope = newId('agt');
        await store.freezes.set({ scope, reason: 'drill', created_at: at() });
        await store.freezes.set({ scope, reason: 'real', created_at: at(1) });
        expect((await store.freezes.list()).filter((f) => f.scope === scope)).toEqual([
          { scope, reason: 'real', created_at: at(1) },
        ]);
        expect(await store.freezes.clear(scope)).toBe(true);
        expect(await store.freezes.clear(scope)).toBe(false);
        expect((await store.freezes.list()).some((f) => f.scope === scope)).toBe(false);
      });
    });

    describe('reminders', () => {
      it('schedules, lists what is due, claims each once, drops an unfired one, and starts afresh on reschedule', async () => {
        const id = newId('act');
        await store.reminders.schedule(
          id,
          [
            { kind: 'escalate', at: at(2_000) },
            { kind: 'remind', at: at(3_000) },
          ],
          at(),
        );
        const dueFor = async (ms: number) =>
          (await store.reminders.due(at(ms), 1000)).filter((r) => r.action_id === id).map((r) => r.kind);
        expect(await dueFor(1_999)).toEqual([]);
        expect(await dueFor(3_000)).toEqual(['escalate', 'remind']);
        // Not before it is due, and once: the second claim (another instance, a restart) gets nothing.
        expect(await store.reminders.claim(id, 'remind', at(2_999))).toBe(false);
        const claims = await Promise.all(
          [1, 2, 3].map(() => store.reminders.claim(id, 'escalate', at(2_500))),
        );
        expect(claims.filter(Boolean)).toHaveLength(1);
        expect(await dueFor(3_000)).toEqual(['remind']);
        // A fired one stays as the record; an unfired one can be dropped.
        await store.reminders.drop(id, 'escalate');
        await store.reminders.drop(id, 'remind');
        expect((await store.reminders.forAction(id)).map((r) => [r.kind, r.fired_at])).toEqual([
          ['escalate', at(2_500)],
        ]);
        // A new hold of the same action replaces what the old one had, fired or not.
        await store.reminders.schedule(id, [{ kind: 'remind', at: at(9_000) }], at(5_000));
        expect((await store.reminders.forAction(id)).map((r) => [r.kind, r.due_at, r.fired_at])).toEqual([
          ['remind', at(9_000), null],
        ]);
        await store.reminders.schedule(id, [], at(6_000));
        expect(await store.reminders.forAction(id)).toEqual([]);
      });
    });

    describe('outbox', () => {
      it('queues one callback per action and type, and lists it without its payload', async () => {
        const action = await storedAction();
        const row = callback(action.id);
        expect(await store.outbox.hasCallback(action.id, row.type)).toBe(false);
        await store.outbox.insertCallback(row);
        expect(await store.outbox.hasCallback(action.id, row.type)).toBe(true);
        await expect(store.outbox.insertCallback({ ...row, id: newId('cb') })).rejects.toThrow(UNIQUE_FAILED);
        expect(await store.outbox.listCallbacks(action.id)).toEqual([
          {
            id: row.id,
            type: row.type,
            url: row.url,
            attempts: 0,
            delivered_at: null,
            gave_up_at: null,
            last_status: null,
            last_error: null,
          },
        ]);
      });

      it('hands a due row to one claimant, settles it under that lease only, and never again', async () => {
        const action = await storedAction();
        const row = callback(action.id, { next_attempt_at: at(-1) });
        await store.outbox.insertCallback(row);
        const queue = new OutboxQueue(store, 'callbacks');
        expect((await queue.due(at(), 1000)).map((r) => r.id)).toContain(row.id);
        expect(await queue.claim(row.id, 0, at(), at(5000))).toBe(true);
        expect(await queue.claim(row.id, 0, at(1), at(5000))).toBe(false);
        expect((await queue.due(at(1), 1000)).map((r) => r.id)).not.toContain(row.id);
        expect(await queue.settle(store, row.id, at(9999), { attempts: 1 })).toBe(false);
        const settled = await store.transaction((tx) =>
          queue.settle(tx, row.id, at(5000), { attempts: 1, delivered_at: at(2), last_status: 200 }),
        );
        expect(settled).toBe(true);
        expect((await queue.due(at(10_000), 1000)).map((r) => r.id)).not.toContain(row.id);
        expect((await store.outbox.listCallbacks(action.id))[0]).toMatchObject({
          attempts: 1,
          last_status: 200,
        });
      });

      it('filters the queue to the rows this instance can deliver', async () => {
        const action = await storedAction();
        const mail = notification(action.id, 'a@example.com', { next_attempt_at: at(-1) });
        const slack = notification(action.id, 'webhook', { channel: 'slack', next_attempt_at: at(-1) });
        await store.outbox.insertNotifications([mail, slack]);
        const emailOnly = new OutboxQueue(store, 'notifications', { column: 'channel', values: ['email'] });
        const due = (await emailOnly.due(at(), 10_000)).map((r) => r.id);
        expect(due).toContain(mail.id);
        expect(due).not.toContain(slack.id);
        const none = new OutboxQueue(store, 'notifications', { column: 'channel', values: [] });
        expect(await none.due(at(), 10)).toEqual([]);
      });

      it('releases leases a crashed run left on SQLite; on PostgreSQL they lapse instead', async () => {
        const action = await storedAction();
        const row = callback(action.id, { lease_until: at(60_000) });
        await store.outbox.insertCallback(row);
        const released = await new OutboxQueue(store, 'callbacks').releaseLeases();
        if (dialect === 'sqlite') expect(released).toBeGreaterThanOrEqual(1);
        else expect(released).toBe(0);
      });

      it('queues a message once per action, hold, channel and recipient, and keeps its payload and status', async () => {
        const action = await storedAction();
        const first = notification(action.id, 'b@example.com');
        await store.outbox.insertNotifications([first, notification(action.id, 'a@example.com')]);
        await store.outbox.insertNotifications([notification(action.id, 'b@example.com')]);
        await store.outbox.insertNotifications([]);
        await store.outbox.setNotificationPayload(first.id, '{"subject":"hold"}');
        await store.outbox.setNotificationStatus(first.id, 'sent');
        const all = await store.outbox.notificationsFor(action.id);
        expect(all.map((n) => n.recipient)).toEqual(['a@example.com', 'b@example.com']);
        expect(all[1]).toMatchObject({ id: first.id, payload: '{"subject":"hold"}', status: 'sent' });
        const shown = await store.outbox.listNotifications(action.id);
        expect(shown).toHaveLength(2);
        expect(Object.keys(shown[0]!)).not.toContain('payload');
      });
    });

    describe('settings', () => {
      it('makes a value once and answers every caller with the one stored', async () => {
        const key = newId('setting');
        expect(await store.settings.get(key)).toBeUndefined();
        const values = await Promise.all(
          [1, 2, 3].map((i) => store.settings.getOrCreate(key, () => `v${i}`)),
        );
        expect(new Set(values).size).toBe(1);
        expect(await store.settings.get(key)).toBe(values[0]);
      });
    });

    describe('digests', () => {
      it('stores a digest once per number, and reads the latest, a page and the one anchoring a seq', async () => {
        const digest = (number: number, ledgerSeq: number): DigestRow => ({
          number,
          version: 1,
          ledger_seq: ledgerSeq,
          ledger_hash: 'a'.repeat(64),
          signed_at: at(),
          previous_digest_hash: 'b'.repeat(64),
          key_id: 'key_test',
          digest_hash: 'c'.repeat(64),
          signature: 'sig',
        });
        expect(await store.digests.latest()).toBeUndefined();
        expect(await store.digests.insert(digest(1, 10))).toBe(true);
        expect(await store.digests.insert(digest(1, 11))).toBe(false);
        expect(await store.digests.insert(digest(2, 20))).toBe(true);
        expect((await store.digests.latest())!.number).toBe(2);
        expect((await store.digests.page(1, 10)).map((d) => d.number)).toEqual([2]);
        expect((await store.digests.atOrBefore(19))!.number).toBe(1);
        expect(await store.digests.atOrBefore(9)).toBeUndefined();
      });
    });

    describe('policy versions', () => {
      it('records a version once, moving only when it was last loaded', async () => {
        const version = newId('pol');
        await store.policyVersions.record({ version, file: 'a.yaml', text: 'default: allow' }, at(1));
        await store.policyVersions.record({ version, file: 'b.yaml', text: 'default: allow' }, at(2));
        expect(await store.policyVersions.get(version)).toEqual({
          version,
          file: 'b.yaml',
          text: 'default: allow',
          first_loaded_at: at(1),
          last_loaded_at: at(2),
        });
        expect((await store.policyVersions.list()).map((v) => v.version)).toContain(version);
      });
    });

    describe('read models', () => {
      it('totals a velocity window over the statuses that count', async () => {
        const agentId = newId('agt');
        await storedAction({ agent_id: agentId, status: 'completed', amount_usd: 10 });
        await storedAction({ agent_id: agentId, status: 'awaiting_approval', amount_usd: 5.5 });
        await storedAction({ agent_id: agentId, status: 'rejected', amount_usd: 100 });
        await storedAction({ agent_id: agentId, status: 'completed', amount_usd: 7, kind: 'payout.create' });
        const q = {
          scope: 'agent',
          subject: agentId,
          since: at(-1),
          until: at(1),
          statuses: COUNTED_STATUSES,
        } as const;
        expect(await store.velocity.total({ ...q, kinds: ['refund.create'] })).toEqual({
          count: 2,
          usd: 15.5,
        });
        expect(await store.velocity.total({ ...q, kinds: 'writes' })).toEqual({ count: 3, usd: 22.5 });
      });

      it('gives the dashboard its queue, its search and the overview’s events', async () => {
        const agent = await store.credentials.findOrCreateAgent(newId('agt'), newId('dash'), at());
        const soon = await storedAction({ agent_id: agent.id, expires_at: at(-999_999_000) });
        const customer = newId('cus');
        const big = await storedAction({ agent_id: agent.id, amount_usd: 900, customer, created_at: at(5) });
        await storedAction({ agent_id: agent.id, status: 'completed', created_at: at(6) });
        expect((await store.dashboard.queue(1))[0]!.id).toBe(soon.id);

        const byAgent = await store.dashboard.search({ agent: agent.name, limit: 2 });
        expect(byAgent.rows).toHaveLength(2);
        expect(byAgent.hasMore).toBe(true);
        const rest = await store.dashboard.search({
          agent: agent.name,
          limit: 2,
          startingAfter: byAgent.rows[1]!.id,
        });
        expect(rest.rows.map((r) => r.id)).toEqual([soon.id]);
        const held = await store.dashboard.search({
          agent: agent.name,
          status: 'awaiting_approval',
          minUsd: 500,
          limit: 10,
        });
        expect(held.rows.map((r) => r.id)).toEqual([big.id]);
        expect((await store.dashboard.search({ q: customer, limit: 10 })).rows.map((r) => r.id)).toEqual([
          big.id,
        ]);
        expect((await store.dashboard.search({ q: big.id, limit: 10 })).rows.map((r) => r.id)).toEqual([
          big.id,
        ]);

        const stamp = at(5 * 86_400_000);
        await store.transaction((tx) =>
          tx.ledger.append([
            {
              actionId: big.id,
              type: 'action.decided',
              from: 'received',
              to: 'awaiting_approval',
              actor: 't',
              data: {},
              at: stamp,
            },
            { actionId: big.id, type: 'action.note', from: null, to: null, actor: 't', data: {}, at: stamp },
          ]),
        );
        const events = await store.dashboard.overviewEvents(stamp);
        expect(events).toContainEqual({
          type: 'action.decided',
          to: 'awaiting_approval',
          at: stamp,
          usd: 900,
        });
        expect(events.some((e) => e.type === 'action.note')).toBe(false);
      });

      it('counts live actions by status and sums held money by currency for the metrics', async () => {
        const before = new Map(
          (await store.metrics.countByStatus(['received', 'pending'])).map((r) => [r.status, r.n]),
        );
        const currency = `x${newId('c').slice(-6).toLowerCase()}`;
        await storedAction({ status: 'received' });
        await storedAction({ currency, amount: 150 });
        await storedAction({ currency, amount: 250 });
        await storedAction({ currency, amount: 1000, status: 'completed' });
        const after = await store.metrics.countByStatus(['received', 'pending']);
        expect(after.find((r) => r.status === 'received')!.n).toBe((before.get('received') ?? 0) + 1);
        expect(after.every((r) => r.status === 'received' || r.status === 'pending')).toBe(true);
        expect((await store.metrics.heldAmounts()).find((r) => r.currency === currency)).toEqual({
          currency,
          total: 400,
        });
      });
    });
  });
}
