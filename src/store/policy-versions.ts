import type { Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { PolicyVersionsTable } from './schema.ts';

export type PolicyVersionRow = Selectable<PolicyVersionsTable>;

/** Every policy version ever loaded, with its text, so a decision's policy_version can be read back. */
export class PolicyVersionsRepository {
  constructor(readonly c: Connection) {}

  /** Records a loaded policy version and its text; loading the same text again only moves last_loaded_at. */
  async record(p: { version: string; file: string; text: string }, at: string): Promise<void> {
    const res = await this.c.db
      .updateTable('policy_versions')
      .set({ last_loaded_at: at, file: p.file })
      .where('version', '=', p.version)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0) return;
    await this.c.db
      .insertInto('policy_versions')
      .values({ version: p.version, file: p.file, text: p.text, first_loaded_at: at, last_loaded_at: at })
      .onConflict((oc) => oc.column('version').doUpdateSet({ last_loaded_at: at }))
      .execute();
  }

  async get(version: string): Promise<PolicyVersionRow | undefined> {
    return this.c.db
      .selectFrom('policy_versions')
      .selectAll()
      .where('version', '=', version)
      .executeTakeFirst();
  }

  /** Newest first. */
  async list(): Promise<PolicyVersionRow[]> {
    return this.c.db.selectFrom('policy_versions').selectAll().orderBy('first_loaded_at', 'desc').execute();
  }
}
