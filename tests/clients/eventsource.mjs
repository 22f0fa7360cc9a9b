// Reads an SSE stream with the npm `eventsource` client, which reconnects by itself and sends
// Last-Event-ID, and prints one JSON line per event on stdout: {"id": ..., "data": ...}.
// Connection state goes to stderr as lines "open" and "error <message>", so a test can see
// reconnects. Exits 0 after COUNT events, 1 after TIMEOUT_MS.
//
// Usage: node eventsource.mjs URL COUNT [TIMEOUT_MS]
import { EventSource } from 'eventsource';

const [url, count, timeoutMs = '60000'] = process.argv.slice(2);
let seen = 0;
const source = new EventSource(url);
const timer = setTimeout(() => {
  console.error(`timed out after ${seen} events`);
  process.exit(1);
}, Number(timeoutMs));

source.addEventListener('open', () => console.error('open'));
source.addEventListener('error', (event) => console.error(`error ${event.message ?? ''}`));
source.addEventListener('message', (event) => {
  process.stdout.write(`${JSON.stringify({ id: event.lastEventId, data: event.data })}\n`);
  seen += 1;
  if (seen >= Number(count)) {
    clearTimeout(timer);
    source.close();
    process.exit(0);
  }
});
