#!/usr/bin/env node
// The comparison server for the benchmarks: Wikimedia's KafkaSSE (npm `kafka-sse`) mounted on
// a bare Node HTTP server, serving the same URL shape as the crate's example services:
//
//   node benches/kafkasse/server.js --listen 127.0.0.1:8093 --brokers 127.0.0.1:9092 \
//       --stream recentchange=bench.recentchange
//
//   GET /v2/stream/NAME[?since=MS|ISO-8601][&last-event-id=JSON]   (Last-Event-ID header too)
//
// One KafkaSSE call per request, as EventStreams does: each client gets its own node-rdkafka
// consumer with KafkaSSE's default Kafka settings. Only the logger is quieter (warn, not
// KafkaSSE's default debug with source locations), so logging does not dominate the numbers.
// Run it with UV_THREADPOOL_SIZE raised (the bench scripts use 128, as KafkaSSE's own tests
// do): every blocking consume call of every client holds a libuv pool thread.
'use strict';

const http = require('http');
const bunyan = require('bunyan');
const kafkaSse = require('kafka-sse');

function usage(message) {
    process.stderr.write(`${message}\nusage: server.js --listen HOST:PORT --brokers HOST:PORT ` +
        '--stream NAME=TOPIC[,TOPIC...] [--stream ...]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const options = { listen: '127.0.0.1:8093', brokers: process.env.KAFKA_BROKERS, streams: new Map() };
    for (let i = 0; i < argv.length; i += 2) {
        const [flag, value] = [argv[i], argv[i + 1]];
        if (value === undefined) {
            usage(`${flag} needs a value`);
        }
        if (flag === '--listen') {
            options.listen = value;
        } else if (flag === '--brokers') {
            options.brokers = value;
        } else if (flag === '--stream') {
            const [name, topics] = value.split('=');
            if (!name || !topics) {
                usage(`expected NAME=TOPIC[,TOPIC...], got ${value}`);
            }
            options.streams.set(name, topics.split(','));
        } else {
            usage(`unknown option ${flag}`);
        }
    }
    if (!options.brokers) {
        usage('--brokers (or KAFKA_BROKERS) is required');
    }
    if (options.streams.size === 0) {
        usage('at least one --stream is required');
    }
    return options;
}

// `since` as EventStreams reads it: epoch milliseconds or an ISO-8601 date-time.
function parseSince(since) {
    const value = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    return Number.isNaN(value) ? undefined : value;
}

function sendError(res, status, detail) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status, detail }) + '\n');
}

function main() {
    const options = parseArgs(process.argv.slice(2));
    const logger = bunyan.createLogger({
        name: 'kafkasse-bench',
        level: process.env.LOG_LEVEL || 'warn',
        stream: process.stderr,
    });
    const server = http.createServer((req, res) => {
        const url = new URL(req.url, 'http://localhost');
        const match = /^\/v2\/stream\/([^/]+)$/.exec(url.pathname);
        const topics = match && options.streams.get(decodeURIComponent(match[1]));
        if (req.method !== 'GET' || !topics) {
            return sendError(res, 404, 'no such stream');
        }
        let atTimestamp;
        if (url.searchParams.has('since')) {
            atTimestamp = parseSince(url.searchParams.get('since'));
            if (atTimestamp === undefined) {
                return sendError(res, 400, 'since is not a timestamp');
            }
        }
        // Browsers cannot set Last-Event-ID on the first request; EventStreams accepts it as
        // a query parameter and KafkaSSE reads the header.
        const lastEventId = url.searchParams.get('last-event-id');
        if (lastEventId && !req.headers['last-event-id']) {
            req.headers['last-event-id'] = lastEventId;
        }
        kafkaSse(req, res, topics, {
            kafkaConfig: { 'metadata.broker.list': options.brokers },
            allowedTopics: topics,
            logger,
        }, atTimestamp).catch((error) => logger.error({ err: error }, 'KafkaSSE request failed'));
    });
    const [host, port] = options.listen.split(/:(?=\d+$)/);
    server.listen(Number(port), host, () => {
        const address = server.address();
        process.stdout.write(`listening on http://${address.address}:${address.port} ` +
            `(pid ${process.pid}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE || 4})\n`);
    });
    const stop = () => {
        server.close();
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main();
