'use strict';
// MLLP intake of the Node.js comparison stack (bench/intake.sh).
//
//   node server.js --port P --redis-port R [--queue NAME]
//
// simple-hl7 receives each message over MLLP and parses it; the handler then
//   1. marks (MSH-3, MSH-4, MSH-10) as seen with a Redis SET NX (a retransmission is answered
//      AA again and not enqueued twice),
//   2. enqueues a BullMQ job on Redis holding the raw message,
//   3. sends simple-hl7's ACK (AA, MSA-2 = MSH-10).
// Redis runs with appendonly yes / appendfsync always, so a job is on disk before the ACK.
// A Redis error answers AE, so the sender keeps the message and sends it again.
// Listens on 127.0.0.1 only. Prints "ready port=P" once listening; SIGTERM/SIGINT stop it.

const hl7 = require('simple-hl7');
const { Queue } = require('bullmq');
const IORedis = require('ioredis');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) {
    console.error(`server.js: ${name} is required`);
    process.exit(2);
  }
  return def;
}

const port = Number(arg('--port'));
const redisPort = Number(arg('--redis-port'));
const queueName = arg('--queue', 'hl7-inbound');
const DEDUPE_TTL_S = 7 * 24 * 3600;

const redis = new IORedis({ host: '127.0.0.1', port: redisPort });
const queue = new Queue(queueName, {
  connection: { host: '127.0.0.1', port: redisPort },
  defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 }, attempts: 5,
    backoff: { type: 'exponential', delay: 200 } },
});

let received = 0;
let duplicates = 0;
let failures = 0;

function str(v) {
  return v === undefined || v === null ? '' : String(v);
}

const app = hl7.tcp();

app.use(async (req, res, next) => {
  received++;
  try {
    const ctrl = str(req.msg.header.getField(8));
    const key = `hl7:seen:${str(req.sender)}|${str(req.facility)}|${ctrl}`;
    const fresh = await redis.set(key, '1', 'EX', DEDUPE_TTL_S, 'NX');
    if (fresh === null) {
      duplicates++;
      res.end();
      return;
    }
    try {
      const raw = req.raw.slice(1, -2); // without the MLLP frame
      await queue.add(`${req.type}^${req.event}`, {
        raw,
        controlId: ctrl,
        sendingApplication: str(req.sender),
        sendingFacility: str(req.facility),
        type: `${req.type}^${req.event}`,
        receivedMs: Date.now(),
      });
    } catch (e) {
      await redis.del(key).catch(() => {}); // let the retransmission through
      throw e;
    }
    res.end();
  } catch (e) {
    next(e);
  }
});

app.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
  failures++;
  console.error(`event=enqueue_failed error=${JSON.stringify(String(err && err.message))}`);
  if (!res || !res.ack) return;
  res.ack.getSegment('MSA').setField(1, 'AE');
  res.end();
});

// simple-hl7 passes its argument to net.Server.listen: an options object binds one address.
const srv = app.start({ port, host: '127.0.0.1' });
srv.server.on('listening', () => console.log(`ready port=${port}`));
srv.server.on('error', (e) => {
  console.error(`server.js: ${e.message}`);
  process.exit(1);
});

async function stop() {
  console.log(`stopping received=${received} duplicates=${duplicates} failures=${failures}`);
  try {
    srv.server.close();
    await queue.close();
    await redis.quit();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
