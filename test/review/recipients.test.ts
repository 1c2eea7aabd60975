import { describe, expect, it } from 'vitest';
import { recipientsFor } from '../../src/notify/notifier.ts';

const alice = { id: 'rev_a', email: 'alice@example.com', groups: ['finance'] };
const bob = { id: 'rev_b', email: 'bob@example.com', groups: ['finance'] };
const carol = { id: 'rev_c', email: 'carol@example.com', groups: ['support'] };
const all = [alice, bob, carol];

describe('who is told about a hold', () => {
  it('mails every reviewer with links when the rule limits nobody', () => {
    const r = recipientsFor({ reviewers: [], notify: [] }, all, null);
    expect(r.map((x) => [x.email, x.reviewer?.id])).toEqual([
      ['alice@example.com', 'rev_a'],
      ['bob@example.com', 'rev_b'],
      ['carol@example.com', 'rev_c'],
    ]);
  });

  it('leaves out the reviewer who requested the action and those outside the rule’s reviewers', () => {
    const r = recipientsFor({ reviewers: ['group:finance'], notify: [] }, all, 'rev_a');
    expect(r.map((x) => x.email)).toEqual(['bob@example.com']);
  });

  it('narrows to notify: addresses, giving links only to eligible reviewers among them', () => {
    const r = recipientsFor(
      {
        reviewers: ['group:finance'],
        notify: ['email:bob@example.com', 'email:cfo@example.com', 'email:carol@example.com'],
      },
      all,
      null,
    );
    expect(r.map((x) => [x.email, x.reviewer?.id ?? null])).toEqual([
      ['bob@example.com', 'rev_b'],
      ['cfo@example.com', null],
      ['carol@example.com', null],
    ]);
  });
});
