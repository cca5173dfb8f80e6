// common.js -- what the node client scripts share: argument parsing, the check runner,
// assertions and no-hang guards.  Each check prints `ok NAME` or `fail NAME DETAIL`.
'use strict';
const assert = require('node:assert/strict');

const GUARD_MS = 20000; // a no-hang guard per awaited step, not a time bound

function args() {
    const [host, port, node, password, prefix, mode, ...checks] = process.argv.slice(2);
    const url = `redis://${encodeURIComponent(node)}:${encodeURIComponent(password)}@${host}:${port}`;
    return { host, port: Number(port), node, password, prefix, mode, checks, url };
}

let connectHung = null; // set once a connect hung: later connects fail at once

// Awaits a client's connect() under the guard; after one connect hung, the next ones fail
// at once (a proxy that never completes a handshake costs one guard, not one per check).
async function guardConnect(promise) {
    if (connectHung) {
        promise.catch(() => {});
        throw new Error(`an earlier connect hung (${connectHung}); not waiting again`);
    }
    try {
        return await guard(promise, 'connect');
    } catch (e) {
        if (/no answer within/.test(e.message)) connectHung = e.message;
        throw e;
    }
}

function guard(promise, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${GUARD_MS} ms: ${what}`)), GUARD_MS);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function oneLine(e) {
    const s = e && e.stack ? String(e.message) + ' @ ' + String(e.stack).split('\n').slice(1, 3).join(' | ') : String(e);
    return s.replace(/\s+/g, ' ').slice(0, 900);
}

// Runs each named check of TABLE in order; a check is async (prefix) => void that throws.
// AFTER (optional) runs after each check, whatever happened: it closes the check's clients.
async function runChecks(table, checks, prefix, after = () => {}) {
    for (const name of checks) {
        const fn = table[name];
        if (!fn) {
            console.log(`fail ${name} no such check in this script`);
            continue;
        }
        try {
            await guard(fn(`${prefix}${name}:`), name);
            console.log(`ok ${name}`);
        } catch (e) {
            console.log(`fail ${name} ${oneLine(e)}`);
        }
        await after();
    }
}

function allBytes() {
    return Buffer.from(Array.from({ length: 256 }, (_, i) => i));
}

function bigValue() {
    const b = Buffer.alloc(10 * 1024 * 1024);
    for (let i = 0; i < b.length; i++) b[i] = (i * 131 + (i >> 13)) & 0xff;
    return b;
}

// Publishes on PUB until some subscriber got it (PUBLISH answers >= 1).
async function publishUntilHeard(publish, channel, message) {
    for (let i = 0; i < 100; i++) {
        if (Number(await publish(channel, message)) >= 1) return;
        await sleep(100);
    }
    throw new Error(`PUBLISH ${channel} never reached a subscriber`);
}

module.exports = { assert, args, guard, guardConnect, sleep, runChecks, allBytes, bigValue, publishUntilHeard, GUARD_MS };
