'use strict';
// BullMQ worker of the Node.js comparison stack (bench/intake.sh): takes the jobs server.js
// enqueued and writes each message into SQLite (better-sqlite3), one INSERT per job.
//
//   node worker.js --redis-port R --db FILE [--queue NAME] [--concurrency N] [--sync MODE]
//
// The database is in WAL mode with synchronous = MODE (default NORMAL, the setting the
// better-sqlite3 documentation recommends with WAL: a commit is not fsynced, the WAL is at
// checkpoints; FULL fsyncs every commit). A message seen before (same MSH-3, MSH-4, MSH-10)
// is not stored twice. Prints "ready" once connected; SIGTERM/SIGINT stop it after the jobs
// in hand.

const { Worker } = require('bullmq');
const Database = require('better-sqlite3');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) {
    console.error(`worker.js: ${name} is required`);
    process.exit(2);
  }
  return def;
}

const redisPort = Number(arg('--redis-port'));
const dbFile = arg('--db');
const queueName = arg('--queue', 'hl7-inbound');
const concurrency = Number(arg('--concurrency', '16'));
const sync = arg('--sync', 'NORMAL').toUpperCase();
if (!['OFF', 'NORMAL', 'FULL', 'EXTRA'].includes(sync)) {
  console.error('worker.js: --sync wants OFF, NORMAL, FULL or EXTRA');
  process.exit(2);
}

const db = new Database(dbFile);
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${sync}`);
db.exec(`CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  sending_application TEXT NOT NULL,
  sending_facility TEXT NOT NULL,
  control_id TEXT NOT NULL,
  type TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  stored_ms INTEGER NOT NULL,
  raw TEXT NOT NULL,
  UNIQUE (sending_application, sending_facility, control_id)
)`);
const insert = db.prepare(`INSERT OR IGNORE INTO messages
  (sending_application, sending_facility, control_id, type, received_ms, stored_ms, raw)
  VALUES (@sendingApplication, @sendingFacility, @controlId, @type, @receivedMs, @storedMs, @raw)`);

let stored = 0;
const worker = new Worker(queueName, async (job) => {
  insert.run({ ...job.data, storedMs: Date.now() });
  stored++;
}, {
  connection: { host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: null },
  concurrency,
});

worker.on('ready', () => console.log('ready'));
worker.on('failed', (job, err) => {
  console.error(`event=job_failed id=${job && job.id} error=${JSON.stringify(String(err && err.message))}`);
});
worker.on('error', (err) => {
  console.error(`event=worker_error error=${JSON.stringify(String(err && err.message))}`);
});

async function stop() {
  console.log(`stopping stored=${stored}`);
  try {
    await worker.close();
    db.close();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
