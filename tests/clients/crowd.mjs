// A crowd of WHATWG EventSource clients (npm `eventsource` 5.x follows the rules browsers
// follow: any answer but 200 closes the source for good) on one stream. Each client keeps
// the `data` of every event it receives, as JSON numbers.
//
// Prints to stdout, one line each:
//   "open N"       once every client has opened for the first time
//   "done"         once every client has EXPECTED events
//   a summary JSON {"clients", "complete", "closed", "duplicates", "out_of_order", "opens"}
//                  when done or at TIMEOUT_MS
// Exits 0 when every client got exactly the numbers 0..EXPECTED-1 in order, else 1.
//
// Usage: node crowd.mjs URL CLIENTS EXPECTED [TIMEOUT_MS]
import { EventSource } from 'eventsource';

const [url, clientsArg, expectedArg, timeoutArg = '120000'] = process.argv.slice(2);
const clients = Number(clientsArg);
const expected = Number(expectedArg);
const crowd = [];
let openedOnce = 0;
let opens = 0;

for (let i = 0; i < clients; i += 1) {
  const client = { seen: [], opened: false, source: new EventSource(url) };
  client.source.addEventListener('open', () => {
    opens += 1;
    if (!client.opened) {
      client.opened = true;
      openedOnce += 1;
      if (openedOnce === clients) console.log(`open ${clients}`);
    }
  });
  client.source.addEventListener('message', (event) => {
    client.seen.push(JSON.parse(event.data).n);
    check();
  });
  crowd.push(client);
}

function summary() {
  let complete = 0;
  let closed = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  for (const client of crowd) {
    if (client.source.readyState === EventSource.CLOSED) closed += 1;
    if (new Set(client.seen).size !== client.seen.length) duplicates += 1;
    if (client.seen.some((n, i) => n !== i)) outOfOrder += 1;
    if (client.seen.length === expected) complete += 1;
  }
  return { clients, complete, closed, duplicates, out_of_order: outOfOrder, opens };
}

function finish() {
  const result = summary();
  console.log(JSON.stringify(result));
  for (const client of crowd) client.source.close();
  const exact = result.complete === clients && result.duplicates === 0 && result.out_of_order === 0;
  process.exit(exact ? 0 : 1);
}

let checks = 0;
function check() {
  checks += 1;
  if (checks % clients !== 0 && checks < clients * expected) return;
  if (crowd.every((client) => client.seen.length >= expected)) {
    console.log('done');
    finish();
  }
}

setTimeout(finish, Number(timeoutArg));
