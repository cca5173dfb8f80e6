// ioredis_client.js -- ioredis through zos-proxy with its default options (ioredis 6 sends
// HELLO 3 and falls back to RESP2 only when refused).  Mode "default"; the check
// resp3_types adds replyMapping "resp3" (a reply-shape option, not a protocol one).
// usage: node ioredis_client.js HOST PORT NODE PASSWORD PREFIX MODE CHECK...
'use strict';
const Redis = require('ioredis');
const { assert, args, guard, guardConnect, sleep, runChecks, allBytes, bigValue, publishUntilHeard } = require('./common');

const a = args();
const clients = [];

async function connect(extra = {}, url = a.url) {
    const c = new Redis(url, { lazyConnect: true, ...extra });
    c.on('error', () => {}); // reported through the failing command
    clients.push(c);
    await guardConnect(c.connect());
    return c;
}

function closeAll() {
    while (clients.length) {
        const c = clients.pop();
        try { c.disconnect(); } catch (e) { /* already closed */ }
    }
}

const checks = {
    async set_get(k) {
        const c = await connect();
        assert.equal(await c.get('clients:whoami'), a.node, 'GET clients:whoami: wrong node');
        assert.equal(await c.set(k, 'v1'), 'OK');
        assert.equal(await c.get(k), 'v1');
        assert.equal(await c.get(k + 'missing'), null);
        assert.equal(await c.incrby(k + 'n', 41), 41);
        assert.equal(await c.incr(k + 'n'), 42);
    },

    async pipeline(k) {
        const c = await connect();
        const n = 200;
        const p = c.pipeline();
        for (let i = 0; i < n; i++) p.set(`${k}${i}`, `v${i}`);
        for (let i = 0; i < n; i++) p.get(`${k}${i}`);
        const r = await p.exec();
        assert.ok(r.every(([err]) => err === null), 'an error in the pipeline');
        assert.deepEqual(r.map(([, v]) => v),
            [...Array(n).fill('OK'), ...Array.from({ length: n }, (_, i) => `v${i}`)]);
    },

    async multi_watch(k) {
        const c = await connect(), other = await connect();
        await c.set(k, 'old');
        assert.equal(await c.watch(k), 'OK');
        assert.equal(await c.get(k), 'old');
        assert.deepEqual(await c.multi().set(k, 'new').get(k).exec(), [[null, 'OK'], [null, 'new']]);
        await c.watch(k);
        await other.set(k, 'other');
        assert.equal(await c.multi().set(k, 'mine').exec(), null, 'EXEC after a watched key changed must abort');
        assert.equal(await c.get(k), 'other');
    },

    async blpop(k) {
        const c = await connect(), pusher = await connect();
        const popped = c.blpop(k, 0);
        await sleep(200); // let BLPOP block first (the result is the same either way)
        assert.equal(await pusher.lpush(k, 'pushed'), 1);
        assert.deepEqual(await guard(popped, 'BLPOP'), [k, 'pushed']);
        assert.equal(await c.ping(), 'PONG');
    },

    async pubsub(k) {
        const sub = await connect(), pub = await connect();
        let heard;
        const got = new Promise(r => { heard = r; });
        sub.on('message', (channel, message) => heard([channel, message]));
        assert.equal(await sub.subscribe(k), 1);
        await publishUntilHeard((ch, m) => pub.publish(ch, m), k, 'hello');
        assert.deepEqual(await guard(got, 'message'), [k, 'hello']);
        await sub.unsubscribe(k);
        assert.equal(await sub.ping(), 'PONG');
        assert.equal(await sub.get('clients:whoami'), a.node);
    },

    async eval(k) {
        const c = await connect();
        const r = await c.eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", 1, k, '5');
        assert.deepEqual(r, [k, '5', 5]);
        assert.equal(await c.eval('return redis.call("GET", KEYS[1])', 1, 'clients:whoami'), a.node);
    },

    async binary(k) {
        const c = await connect();
        const v = allBytes();
        assert.equal(await c.set(k, v), 'OK');
        const got = await c.getBuffer(k);
        assert.ok(Buffer.isBuffer(got) && got.equals(v), `256 byte values came back as ${got && got.toString('hex')}`);
    },

    async big(k) {
        const c = await connect();
        const v = bigValue();
        assert.equal(await c.set(k, v), 'OK');
        assert.equal(await c.strlen(k), v.length);
        const got = await c.getBuffer(k);
        assert.ok(Buffer.isBuffer(got) && got.length === v.length && got.equals(v), '10 MB value differs');
        await c.del(k);
    },

    // A URL without username: ioredis sends HELLO 3 AUTH default PASSWORD; the password
    // alone must pick the node.
    async auth_password(k) {
        const c = await connect({}, `redis://:${encodeURIComponent(a.password)}@${a.host}:${a.port}`);
        assert.equal(await c.get('clients:whoami'), a.node, 'password-only URL: wrong node');
    },

    // The default connection negotiated RESP3 (no fallback to RESP2): with
    // replyMapping "resp3" maps and doubles keep their RESP3 shapes.
    async resp3_types(k) {
        const c = await connect({ replyMapping: 'resp3' });
        await c.hset(k + 'h', 'a', '1', 'b', '2');
        await c.zadd(k + 'z', 1.5, 'm');
        const h = await c.call('HGETALL', k + 'h');
        assert.deepEqual(h, { a: '1', b: '2' }, `HGETALL is not a RESP3 map: ${JSON.stringify(h)}`);
        const z = await c.call('ZSCORE', k + 'z', 'm');
        assert.equal(z, 1.5, `ZSCORE is not a RESP3 double: ${JSON.stringify(z)}`);
        const legacy = await connect();
        assert.deepEqual(await legacy.call('HGETALL', k + 'h'), ['a', '1', 'b', '2']);
    },

    // RESP3: a subscribed connection keeps serving ordinary commands (ioredis refuses them
    // on a RESP2 subscriber); messages arrive as pushes.
    async push_commands(k) {
        const sub = await connect(), pub = await connect();
        const messages = [];
        let wake = () => {};
        sub.on('message', (ch, m) => { messages.push([ch, m]); wake(); });
        assert.equal(await sub.subscribe(k), 1);
        assert.equal(await sub.set(k + 'x', 'between'), 'OK');
        assert.equal(await sub.get(k + 'x'), 'between');
        await publishUntilHeard((ch, m) => pub.publish(ch, m), k, 'one');
        while (messages.length < 1) await guard(new Promise(r => { wake = r; }), 'push message');
        assert.equal(await sub.incr(k + 'n'), 1);
        assert.equal(await pub.publish(k, 'two'), 1);
        assert.equal(await sub.get('clients:whoami'), a.node);
        while (messages.length < 2) await guard(new Promise(r => { wake = r; }), 'second push');
        assert.deepEqual(messages, [[k, 'one'], [k, 'two']]);
        await sub.unsubscribe(k);
        assert.equal(await sub.get(k + 'x'), 'between');
    },
};

runChecks(checks, a.checks, a.prefix, closeAll)
    .then(() => process.exit(0), e => { console.error(e); process.exit(1); });
