import type { Connection } from './connection.ts';

/** Values Airlock generates once and every instance on the store shares (the callback signing secret). */
export class SettingsRepository {
  constructor(readonly c: Connection) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.c.db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst();
    return row?.value;
  }

  /**
   * The value of `key`, stored from `make()` when there is none. Two instances may race to store one: the first
   * stays, and both answer with it.
   */
  async getOrCreate(key: string, make: () => string): Promise<string> {
    const existing = await this.get(key);
    if (existing !== undefined) return existing;
    await this.c.db
      .insertInto('settings')
      .values({ key, value: make() })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    const stored = await this.get(key);
    if (stored === undefined) throw new Error(`setting ${key} was neither found nor stored`);
    return stored;
  }
}
