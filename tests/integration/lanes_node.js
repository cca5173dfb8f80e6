// lanes_node.js -- ioredis with its default options through zos-proxy, for
// test_lanes.py::test_ioredis_db1_client_survives_node_restart.
// usage: NODE_PATH=<npm cache>/node_modules node lanes_node.js URL PREFIX N
//   connects to URL (e.g. redis://127.0.0.1:PORT/1), SETs PREFIX+"pre", prints "ready";
//   waits for a line "go" on stdin (the test restarts the node meanwhile); then SETs
//   PREFIX+"post:"+i = i for i < N, retrying each until it succeeds (a no-hang guard of 40 s
//   in all), GETs each back, prints "done" and exits 0.  Any failure: "fail DETAIL", exit 1.
'use strict';
const Redis = require('ioredis');
const readline = require('node:readline');

const [url, prefix, nArg] = process.argv.slice(2);
const n = Number(nArg);
const GUARD_MS = 40000;
const sleep = ms => new Promise(r => setTimeout(r, ms));

function fail(msg) {
    console.log('fail ' + String(msg).replace(/\s+/g, ' ').slice(0, 900));
    process.exit(1);
}

setTimeout(() => fail(`no end within ${GUARD_MS * 2} ms`), GUARD_MS * 2).unref();

async function main() {
    const c = new Redis(url); // default options
    c.on('error', e => console.error('error event: ' + e.message));
    if (await c.set(prefix + 'pre', '1') !== 'OK') fail('SET pre');
    console.log('ready');

    const rl = readline.createInterface({ input: process.stdin });
    await new Promise(resolve => rl.on('line', l => { if (l.trim() === 'go') resolve(); }));
    rl.close();

    const deadline = Date.now() + GUARD_MS;
    let retries = 0;
    for (let i = 0; i < n; i++) {
        for (;;) {
            try {
                if (await c.set(`${prefix}post:${i}`, String(i)) === 'OK') break;
            } catch (e) {
                retries++;
                console.error(`SET post:${i}: ${e.message}`);
            }
            if (Date.now() > deadline) fail(`SET post:${i} never succeeded (${retries} retries)`);
            await sleep(100);
        }
    }
    for (let i = 0; i < n; i++) {
        const v = await c.get(`${prefix}post:${i}`);
        if (v !== String(i)) fail(`GET post:${i} = ${v}`);
    }
    console.log(`retries ${retries}`);
    console.log('done');
    await c.quit();
    process.exit(0);
}

main().catch(e => fail(e && e.stack ? e.stack : e));
