// node_redis.js -- node-redis (npm "redis") through zos-proxy, with its default options
// (mode "default": node-redis 6 speaks RESP3) or RESP: 2 (mode "resp2").
// usage: node node_redis.js HOST PORT NODE PASSWORD PREFIX MODE CHECK...
'use strict';
const { createClient, RESP_TYPES } = require('redis');
const { assert, args, guard, guardConnect, sleep, runChecks, allBytes, bigValue, publishUntilHeard } = require('./common');

const a = args();
const clients = [];

async function connect(extra = {}, url = a.url) {
    const opts = { url, ...extra };
    if (a.mode === 'resp2') opts.RESP = 2;
    const c = createClient(opts);
    c.on('error', () => {}); // reported through the failing command
    clients.push(c);
    await guardConnect(c.connect());
    return c;
}

function closeAll() {
    while (clients.length) {
        const c = clients.pop();
        try { c.destroy(); } catch (e) { /* already closed */ }
    }
}

const asBuffers = c => c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });

const checks = {
    async set_get(k) {
        const c = await connect();
        assert.equal(await c.get('clients:whoami'), a.node, 'GET clients:whoami: wrong node');
        assert.equal(await c.set(k, 'v1'), 'OK');
        assert.equal(await c.get(k), 'v1');
        assert.equal(await c.get(k + 'missing'), null);
        assert.equal(await c.incrBy(k + 'n', 41), 41);
        assert.equal(await c.incr(k + 'n'), 42);
    },

    async pipeline(k) {
        const c = await connect();
        const n = 200;
        const sets = [], gets = [];
        for (let i = 0; i < n; i++) sets.push(c.set(`${k}${i}`, `v${i}`));
        for (let i = 0; i < n; i++) gets.push(c.get(`${k}${i}`));
        assert.deepEqual(await Promise.all(sets), Array(n).fill('OK'));
        assert.deepEqual(await Promise.all(gets), Array.from({ length: n }, (_, i) => `v${i}`));
        const r = await c.multi().set(k + 'p', '1').incr(k + 'p').get(k + 'p').execAsPipeline();
        assert.deepEqual(r, ['OK', 2, '2']);
    },

    async multi_watch(k) {
        const c = await connect(), other = await connect();
        await c.set(k, 'old');
        await c.watch(k);
        assert.equal(await c.get(k), 'old');
        assert.deepEqual(await c.multi().set(k, 'new').get(k).exec(), ['OK', 'new']);
        await c.watch(k);
        await other.set(k, 'other');
        let aborted;
        try {
            aborted = await c.multi().set(k, 'mine').exec();
        } catch (e) {
            aborted = e.constructor.name === 'WatchError' ? null : e;
        }
        assert.equal(aborted, null, 'EXEC after a watched key changed must abort');
        assert.equal(await c.get(k), 'other');
    },

    async blpop(k) {
        const c = await connect(), pusher = await connect();
        const popped = c.blPop(k, 0);
        await sleep(200); // let BLPOP block first (the result is the same either way)
        assert.equal(await pusher.lPush(k, 'pushed'), 1);
        assert.deepEqual(await guard(popped, 'BLPOP'), { key: k, element: 'pushed' });
        assert.equal(await c.ping(), 'PONG');
    },

    async pubsub(k) {
        const sub = await connect(), pub = await connect();
        let heard;
        const got = new Promise(r => { heard = r; });
        await sub.subscribe(k, (message, channel) => heard([channel, message]));
        await publishUntilHeard((ch, m) => pub.publish(ch, m), k, 'hello');
        assert.deepEqual(await guard(got, 'message'), [k, 'hello']);
        await sub.unsubscribe(k);
        assert.equal(await sub.ping(), 'PONG');
        assert.equal(await sub.get('clients:whoami'), a.node);
    },

    async eval(k) {
        const c = await connect();
        const r = await c.eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}",
            { keys: [k], arguments: ['5'] });
        assert.deepEqual(r, [k, '5', 5]);
        assert.equal(await c.eval('return redis.call("GET", KEYS[1])', { keys: ['clients:whoami'] }), a.node);
    },

    async binary(k) {
        const c = await connect();
        const v = allBytes();
        assert.equal(await c.set(k, v), 'OK');
        const got = await asBuffers(c).get(k);
        assert.ok(Buffer.isBuffer(got) && got.equals(v), `256 byte values came back as ${got && got.toString('hex')}`);
    },

    async big(k) {
        const c = await connect();
        const v = bigValue();
        assert.equal(await c.set(k, v), 'OK');
        assert.equal(await c.strLen(k), v.length);
        const got = await asBuffers(c).get(k);
        assert.ok(Buffer.isBuffer(got) && got.length === v.length && got.equals(v), '10 MB value differs');
        await c.del(k);
    },

    // A URL without username: node-redis sends HELLO 3 AUTH default PASSWORD (RESP2:
    // AUTH PASSWORD); the password alone must pick the node.
    async auth_password(k) {
        const c = await connect({}, `redis://:${encodeURIComponent(a.password)}@${a.host}:${a.port}`);
        assert.equal(await c.get('clients:whoami'), a.node, 'password-only URL: wrong node');
    },

    // The connection speaks RESP3: raw replies carry RESP3 types (a map, a double, a null).
    async resp3_types(k) {
        const c = await connect();
        await c.hSet(k + 'h', { a: '1', b: '2' });
        await c.zAdd(k + 'z', { score: 1.5, value: 'm' });
        const h = await c.withTypeMapping({ [RESP_TYPES.MAP]: Map }).sendCommand(['HGETALL', k + 'h']);
        assert.ok(h instanceof Map, `HGETALL is not a RESP3 map: ${JSON.stringify(h)}`);
        assert.deepEqual([...h.entries()].sort(), [['a', '1'], ['b', '2']]);
        assert.deepEqual(await c.hGetAll(k + 'h'), { a: '1', b: '2' });
        const z = await c.sendCommand(['ZSCORE', k + 'z', 'm']);
        assert.equal(z, 1.5, `ZSCORE is not a RESP3 double: ${JSON.stringify(z)}`);
        assert.equal(await c.sendCommand(['GET', k + 'missing']), null);
    },

    // RESP: 2 really is RESP2 through the proxy: a flat array, a bulk string.
    async resp2_types(k) {
        const c = await connect();
        await c.hSet(k + 'h', { a: '1' });
        await c.zAdd(k + 'z', { score: 1.5, value: 'm' });
        assert.deepEqual(await c.sendCommand(['HGETALL', k + 'h']), ['a', '1']);
        assert.equal(await c.sendCommand(['ZSCORE', k + 'z', 'm']), '1.5');
        assert.deepEqual(await c.hGetAll(k + 'h'), { a: '1' });
    },

    // RESP3: a subscribed connection keeps serving ordinary commands; messages are pushes.
    async push_commands(k) {
        const sub = await connect(), pub = await connect();
        const messages = [];
        let wake = () => {};
        await sub.subscribe(k, (m, ch) => { messages.push([ch, m]); wake(); });
        await sub.set(k + 'x', 'between');
        assert.equal(await sub.get(k + 'x'), 'between');
        assert.equal(await sub.ping(), 'PONG');
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

    // Client-side caching: a cached GET is served locally until the node's invalidation
    // push (through the proxy) drops it.
    async csc(k) {
        const c = await connect({ clientSideCache: { ttl: 0, maxEntries: 0 } });
        const writer = await connect();
        await writer.set(k, 'v1');
        assert.equal(await c.get(k), 'v1');
        assert.equal(await c.get(k), 'v1');
        const s1 = c.clientSideCache.stats();
        assert.ok(s1.hitCount >= 1, `second GET was not served from the cache: ${JSON.stringify(s1)}`);
        await writer.set(k, 'v2');
        let v;
        for (let i = 0; i < 200; i++) { // the invalidation push arrives asynchronously
            v = await c.get(k);
            if (v === 'v2') break;
            await sleep(50);
        }
        assert.equal(v, 'v2', 'the invalidation never reached the client-side cache');
        assert.equal(await c.get('clients:whoami'), a.node);
    },
};

runChecks(checks, a.checks, a.prefix, closeAll)
    .then(() => process.exit(0), e => { console.error(e); process.exit(1); });
