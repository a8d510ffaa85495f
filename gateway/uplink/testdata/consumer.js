// consumer.js URL FILTER N: a cloud consumer of edgegw's batches (format v1,
// README "Batches on the uplink") written as a user would, with the npm mqtt
// package and Node's own zlib. It subscribes to FILTER, prints "ready" once
// subscribed, then one JSON line per unbatched message
// {"topic","retain","p"|"b"} and exits after N messages.
'use strict';
const mqtt = require('mqtt');
const zlib = require('zlib');

const [url, filter, n] = process.argv.slice(2);
const want = Number(n);
let got = 0;
const c = mqtt.connect(url, { protocolVersion: 5, clientId: 'node-consumer', clean: true });
let done = false;
c.on('error', (err) => {
  if (done) return; // the broker resets what it still had in flight
  console.error(err.message);
  process.exit(2);
});
c.on('connect', () => {
  c.subscribe(filter, { qos: 2 }, (err) => {
    if (err) { console.error(err.message); process.exit(2); }
    console.log('ready');
  });
});
c.on('message', (topic, payload, packet) => {
  const ct = (packet.properties && packet.properties.contentType) || '';
  if (!ct.startsWith('application/vnd.edgegw.batch.v1')) {
    console.error('unexpected content type ' + JSON.stringify(ct) + ' on ' + topic);
    process.exit(3);
  }
  const body = ct.includes('enc=zlib') ? zlib.inflateSync(payload) : payload;
  const doc = JSON.parse(body.toString('utf8'));
  if (doc.v !== 1) { console.error('version ' + doc.v); process.exit(3); }
  const lines = [];
  for (const r of doc.records) {
    const t = r.topic !== undefined ? r.topic : (doc.prefix ? doc.prefix + '/' + r.t : r.t);
    const m = { topic: t, retain: r.r === true };
    if (r.p !== undefined) m.p = r.p; else m.b = r.b;
    lines.push(JSON.stringify(m));
  }
  got += lines.length;
  const last = got >= want;
  if (last) done = true;
  process.stdout.write(lines.join('\n') + '\n', () => { if (last) c.end(true, () => process.exit(0)); });
});
