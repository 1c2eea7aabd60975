// `airlock freeze`, `airlock unfreeze`, `airlock freezes` (the kill switch) and `airlock keys revoke`.
import type { Command } from 'commander';
import { AirlockError } from '../errors.ts';
import { ALL_AGENTS, clearFreeze, listFreezes, setFreeze } from '../reliability/freeze.ts';
import type { Store } from '../store/store.ts';

type WithStore = <T>(fn: (store: Store) => Promise<T>) => Promise<T>;

async function scopeOf(store: Store, agent: string | undefined): Promise<string> {
  if (agent === undefined) return ALL_AGENTS;
  const row = await store.db.selectFrom('agents').select('id').where('name', '=', agent).executeTakeFirst();
  if (!row) throw new AirlockError('resource_missing', `No agent named '${agent}'`);
  return row.id;
}

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
      const rows = await withStore(async (s) => {
        const names = new Map(
          (await s.db.selectFrom('agents').select(['id', 'name']).execute()).map((a) => [a.id, a.name]),
        );
        return (await listFreezes(s)).map((f) => ({
          ...f,
          agent: f.scope === ALL_AGENTS ? null : (names.get(f.scope) ?? f.scope),
        }));
      });
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

  keys
    .command('revoke <key-id>')
    .description('revoke an agent key (key_…); the proxy stops accepting it within 10 seconds')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const revoked = await withStore(async (s) => {
        const res = await s.db
          .updateTable('agent_keys')
          .set({ revoked_at: new Date().toISOString() })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        return Number(res.numUpdatedRows) > 0;
      });
      if (!revoked) throw new AirlockError('resource_missing', `No active agent key '${id}'`);
      print(Boolean(o.json), { id, revoked }, `Revoked ${id}.`);
    });
}
