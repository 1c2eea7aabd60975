// Who may decide a hold, before and after its escalation, and who hears of the escalation: properties over any
// reviewers, groups and principals. The engine's vote check, the dashboard and the messages all use these.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eligibleReviewers, mayDecide, type Reviewer } from '../../src/engine/engine.ts';
import { escalationRecipients, recipientsFor } from '../../src/notify/email.ts';

const EMAILS = ['ann@x.com', 'bob@x.com', 'cy@x.com', 'dee@x.com', 'out@x.com'];
const GROUPS = ['finance', 'managers', 'support'];
const principal = fc.oneof(
  fc.constantFrom(...EMAILS),
  fc.constantFrom(...GROUPS).map((g) => `group:${g}`),
);
const reviewers: fc.Arbitrary<Reviewer[]> = fc
  .uniqueArray(fc.constantFrom(...EMAILS.slice(0, 4)), { minLength: 1 })
  .chain((emails) =>
    fc.tuple(
      ...emails.map((email) => fc.subarray(GROUPS).map((groups) => ({ id: `rev_${email}`, email, groups }))),
    ),
  );

describe('eligibility with escalation', () => {
  it('only ever widens who may decide, by exactly those escalated to; no named reviewers means anyone', () => {
    fc.assert(
      fc.property(
        reviewers,
        fc.array(principal, { maxLength: 3 }),
        fc.array(principal, { maxLength: 3 }),
        (people, named, escalated) => {
          const before = eligibleReviewers({ reviewers: named });
          const after = eligibleReviewers({ reviewers: named, escalated_to: escalated });
          for (const r of people) {
            const was = mayDecide(r, before);
            const is = mayDecide(r, after);
            if (was) expect(is).toBe(true);
            if (named.length === 0) expect(is).toBe(true);
            else expect(is).toBe(was || mayDecide(r, escalated.length ? escalated : ['group:none']));
          }
        },
      ),
    );
  });

  it('tells every reviewer an escalation names, never the requester, and an unknown address without links', () => {
    fc.assert(
      fc.property(
        reviewers,
        fc.array(principal, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (people, to, pick) => {
          const requester = people[pick % people.length]!.id;
          const told = escalationRecipients(to, people, requester);
          expect(told.some((t) => t.reviewer?.id === requester)).toBe(false);
          for (const r of people) {
            const expected = r.id !== requester && mayDecide(r, to);
            expect(told.some((t) => t.reviewer?.id === r.id)).toBe(expected);
          }
          for (const t of told.filter((x) => x.reviewer === null)) {
            expect(to).toContain(t.email);
            expect(people.some((p) => p.email === t.email)).toBe(false);
          }
          expect(new Set(told.map((t) => t.email)).size).toBe(told.length);
        },
      ),
    );
  });

  it('sends the hold itself to the escalated reviewers once escalated, with links', () => {
    const people: Reviewer[] = [
      { id: 'rev_a', email: 'ann@x.com', groups: ['finance'] },
      { id: 'rev_d', email: 'dee@x.com', groups: ['managers'] },
    ];
    const decision = { reviewers: ['group:finance'], notify: [] };
    expect(recipientsFor(decision, people, null).map((r) => r.email)).toEqual(['ann@x.com']);
    expect(
      recipientsFor({ ...decision, escalated_to: ['group:managers'] }, people, null).map((r) => [
        r.email,
        r.reviewer?.id,
      ]),
    ).toEqual([
      ['ann@x.com', 'rev_a'],
      ['dee@x.com', 'rev_d'],
    ]);
  });
});
