// The WAL's durability: fdatasync off the event loop, and checkpoints from a worker thread.
import { closeSync, fdatasync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { WalSync } from './group-commit.ts';

const CHECKPOINT_EVERY_MS = 500;

// CommonJS, evaluated in the worker: its own connection runs a PASSIVE checkpoint (which never blocks writers)
// every CHECKPOINT_EVERY_MS until told to stop.
const CHECKPOINTER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
}, workerData.everyMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  close(): Promise<void>;
}

export function startCheckpointer(file: string): Checkpointer {
  const worker = new Worker(CHECKPOINTER, {
    eval: true,
    workerData: {
      file,
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      everyMs: CHECKPOINT_EVERY_MS,
    },
  });
  // If the worker cannot run, the serving connection's own checkpoints (the backstop above) take over.
  worker.on('error', () => {});
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.unref();
  return {
    async close() {
      worker.ref();
      worker.postMessage('close');
      await exited;
    },
  };
}

/**
 * The WAL file's side of the store: fdatasync of the WAL on libuv's thread pool and, on close, the checkpoint
 * worker that copies it into the database file. The descriptor is opened on first use (the -wal file exists once
 * the first write has happened) and kept: SQLite removes the file only when the last connection closes, and this
 * process holds one for as long as the store is open.
 */
export function walFile(path: string, checkpointer: Checkpointer | null): WalSync {
  let fd: number | null = null;
  return {
    sync: () =>
      new Promise<void>((resolve, reject) => {
        try {
          fd ??= openSync(path, 'r');
        } catch (err) {
          reject(err);
          return;
        }
        fdatasync(fd, (err) => (err ? reject(err) : resolve()));
      }),
    async close() {
      if (fd !== null) closeSync(fd);
      fd = null;
      await checkpointer?.close();
    },
  };
}
