import { mayDecide, type Reviewer } from '../engine/engine.ts';
import { ADMIN_GROUP } from './credentials.ts';

/**
 * Who may do what in the review dashboard. Every reviewer with a session sees every action; deciding one is
 * narrowed by its status, by who asked for it, by the reviewers the policy named and by earlier votes; only admins
 * (reviewers in the `admins` group) work the kill switch. The engine checks the same rules again when it decides;
 * these answers tell a page what to offer and a route what to refuse before asking.
 */

/** A dashboard user is an admin, and may freeze and unfreeze, when their reviewer account is in the `admins` group. */
export function isAdmin(reviewer: Reviewer): boolean {
  return reviewer.groups?.includes(ADMIN_GROUP) ?? false;
}

/** What the decision about one action depends on. */
export interface DecisionSubject {
  status: string;
  /** The reviewer who asked for the action in the dashboard, if one did. */
  requestedBy: string | null;
  /** The reviewers (emails, `group:` entries) the policy named; empty means any reviewer. */
  reviewers: readonly string[];
  /** Reviewers who have already voted on it. */
  voterIds: readonly string[];
}

/** Why a reviewer cannot decide this action, in words for the page, or null when they can. */
export function whyCannotDecide(reviewer: Reviewer, subject: DecisionSubject): string | null {
  if (subject.status !== 'awaiting_approval') return `Already ${subject.status.replace('_', ' ')}`;
  if (subject.requestedBy === reviewer.id) return 'You requested this; another reviewer must decide';
  if (!mayDecide(reviewer, subject.reviewers)) return `Needs ${subject.reviewers.join(' or ')}`;
  if (subject.voterIds.includes(reviewer.id)) return 'You have voted; waiting for others';
  return null;
}
