// A NestJS-style producer: enqueues one try-on job with Node bullmq, waits for it with
// QueueEvents, and reads it back with Job.fromId. Prints one JSON line on stdout.
//
//   node produce.mjs <redis url> <queue name> <prefix> <job id>   (job data JSON on stdin)
import { Job, Queue, QueueEvents } from 'bullmq';

const [url, queueName, prefix, jobId] = process.argv.slice(2);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const data = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const connection = { url };
const queue = new Queue(queueName, { connection, prefix });
const events = new QueueEvents(queueName, { connection, prefix });
const progress = [];
events.on('progress', ({ jobId: id, data: p }) => {
  if (id === jobId) progress.push(p);
});
await events.waitUntilReady();

const job = await queue.add('tryon', data, {
  jobId,
  removeOnComplete: { age: 86400 },
  removeOnFail: { age: 604800 },
});
let returnvalue = null;
let failedReason = null;
try {
  returnvalue = await job.waitUntilFinished(events, 30000);
} catch (err) {
  failedReason = String(err.message ?? err);
}
const stored = await Job.fromId(queue, jobId);
console.log(
  JSON.stringify({
    returnvalue,
    failedReason,
    progressEvents: progress,
    stored: {
      state: await stored.getState(),
      returnvalue: stored.returnvalue,
      progress: stored.progress,
      attemptsStarted: stored.attemptsStarted,
    },
  }),
);
await events.close();
await queue.close();
