// `airlock freeze`, `airlock unfreeze`, `airlock freezes` (the kill switch) and `airlock keys revoke`; main.ts
// registers `reviewers revoke-token` and `admins revoke` with the same registerRevoke.
import type { Command } from 'commander';
import { revokeAgentKey } from '../auth/credentials.ts';
import { clearFreeze, describeFreezes, freezeScope as scopeOf, setFreeze } from '../engine/freeze.ts';
import { AirlockError } from '../errors.ts';
import type { Store } from '../store/store.ts';

type WithStore = <T>(fn: (store: Store) => Promise<T>) => Promise<T>;

function print(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
}

export function registerFreezeCommands(program: Command, keys: Command, withStore: WithStore): void {
  program
    .command('freeze')
    .description(
      'kill switch: refuse every write (money-out) for one agent, or for all agents; reads still work',
    )
    .option('--agent <name>', 'freeze only this agent')
    .option('--reason <text>', 'shown to agents and reviewers')
    .option('--json', 'print JSON')
    .action(async (o: { agent?: string; reason?: string; json?: boolean }) => {
      const freeze = await withStore(async (s) => setFreeze(s, await scopeOf(s, o.agent), o.reason ?? null));
      print(
        Boolean(o.json),
        freeze,
        `Frozen: writes ${o.agent ? `by ${o.agent}` : 'by every agent'} are refused (every instance within a second).`,
      );
    });

  program
    .command('unfreeze')
    .description('lift a freeze set with airlock freeze')
    .option('--agent <name>', 'lift the freeze on this agent (without it: the freeze on everyone)')
    .option('--json', 'print JSON')
    .action(async (o: { agent?: string; json?: boolean }) => {
      const lifted = await withStore(async (s) => clearFreeze(s, await scopeOf(s, o.agent)));
      const who = o.agent ?? 'every agent';
      print(Boolean(o.json), { lifted }, lifted ? `Unfrozen: ${who}.` : `${who} was not frozen.`);
    });

  program
    .command('freezes')
    .description('list the freezes in force')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const rows = await withStore(describeFreezes);
      print(
        Boolean(o.json),
        rows,
        rows.length
          ? rows
              .map((f) => `${f.agent ?? 'every agent'}  since ${f.created_at}  ${f.reason ?? ''}`.trim())
              .join('\n')
          : 'No freezes.',
      );
    });

  registerRevoke(keys, withStore, {
    command: 'revoke <key-id>',
    description: 'revoke an agent key (key_…); every instance stops accepting it at once',
    what: 'agent key',
    revoke: revokeAgentKey,
  });
}

/** A credential's revoke command: `<command> <id>`; an id that is not an active credential is an error. */
export function registerRevoke(
  parent: Command,
  withStore: WithStore,
  spec: {
    command: string;
    description: string;
    what: string;
    revoke: (store: Store, id: string) => Promise<boolean>;
  },
): void {
  parent
    .command(spec.command)
    .description(spec.description)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const revoked = await withStore((s) => spec.revoke(s, id));
      if (!revoked) throw new AirlockError('resource_missing', `No active ${spec.what} '${id}'`);
      print(Boolean(o.json), { id, revoked }, `Revoked ${id}.`);
    });
}
