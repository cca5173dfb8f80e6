<?php
// php_client.php -- phpredis (Debian's php-redis 5.3, RESP2) through zos-proxy, default
// options; phpredis takes no URL, so AUTH [node, password] (ACL form) names the node.
// Prints "ok CHECK" or "fail CHECK DETAIL" per check.
// usage: php php_client.php HOST PORT NODE PASSWORD PREFIX MODE CHECK...

[$host, $port, $node, $password, $prefix, $mode] = array_slice($argv, 1, 6);
$checks = array_slice($argv, 7);
const GUARD = 20.0; // seconds: connect and read timeout, a no-hang guard

class CheckFailed extends Exception {}

function eq($got, $want, $what = '')
{
    if ($got !== $want) {
        throw new CheckFailed(sprintf('%s: got %s, want %s', $what,
            substr(var_export($got, true), 0, 300), substr(var_export($want, true), 0, 300)));
    }
}

$clients = [];
function connect()
{
    global $host, $port, $node, $password, $clients;
    $c = new Redis();
    if (!$c->connect($host, (int)$port, GUARD, null, 0, GUARD)) {
        throw new CheckFailed("connect failed");
    }
    if ($c->auth([$node, $password]) !== true) {
        throw new CheckFailed("AUTH [$node, ...] refused: " . $c->getLastError());
    }
    $clients[] = $c;
    return $c;
}

// Runs FN in a child process (phpredis is synchronous); returns its pid.
function in_child(callable $fn)
{
    $pid = pcntl_fork();
    if ($pid < 0) {
        throw new CheckFailed('fork failed');
    }
    if ($pid === 0) {
        try {
            $fn();
        } finally {
            posix_kill(posix_getpid(), SIGKILL); // no destructors, no shared sockets closed twice
        }
    }
    return $pid;
}

function big_value()
{
    $unit = '';
    for ($i = 0; $i < 4096; $i++) {
        $unit .= chr(($i * 131) & 0xff);
    }
    return str_repeat($unit, 10 * 1024 * 1024 / 4096);
}

$fns = [
    'set_get' => function ($k) use ($node) {
        $c = connect();
        eq($c->get('clients:whoami'), $node, 'GET clients:whoami: wrong node');
        eq($c->set($k, 'v1'), true, 'SET');
        eq($c->get($k), 'v1', 'GET');
        eq($c->get($k . 'missing'), false, 'GET missing');
        eq($c->incrBy($k . 'n', 41), 41, 'INCRBY');
        eq($c->incr($k . 'n'), 42, 'INCR');
    },

    'pipeline' => function ($k) {
        $c = connect();
        $n = 200;
        $p = $c->pipeline();
        for ($i = 0; $i < $n; $i++) $p->set("$k$i", "v$i");
        for ($i = 0; $i < $n; $i++) $p->get("$k$i");
        $want = array_fill(0, $n, true);
        for ($i = 0; $i < $n; $i++) $want[] = "v$i";
        eq($p->exec(), $want, 'pipelined replies');
    },

    'multi_watch' => function ($k) {
        $c = connect();
        $other = connect();
        $c->set($k, 'old');
        eq($c->watch($k), true, 'WATCH');
        eq($c->get($k), 'old', 'GET under WATCH');
        eq($c->multi()->set($k, 'new')->get($k)->exec(), [true, 'new'], 'EXEC');
        $c->watch($k);
        $other->set($k, 'other');
        eq($c->multi()->set($k, 'mine')->exec(), false, 'EXEC after the watched key changed');
        eq($c->get($k), 'other', 'GET');
    },

    'blpop' => function ($k) {
        $c = connect();
        $pid = in_child(function () use ($k) {
            usleep(200000); // let BLPOP block first (the result is the same either way)
            connect()->lPush($k, 'pushed');
        });
        $r = $c->blPop([$k], 0);
        pcntl_waitpid($pid, $status);
        eq($r, [$k, 'pushed'], 'BLPOP');
        eq($c->ping(), true, 'PING after BLPOP');
    },

    'pubsub' => function ($k) use ($node) {
        $sub = connect();
        $pid = in_child(function () use ($k) {
            $pub = connect();
            for ($i = 0; $i < 100 && $pub->publish($k, 'hello') < 1; $i++) {
                usleep(100000);
            }
        });
        $got = null;
        // phpredis 5.3 cannot leave its subscribe loop (unsubscribe or `return false` in the
        // callback take effect only at a later message): closing the connection is its
        // documented way out, and the loop then throws "Connection closed".
        try {
            $sub->subscribe([$k], function ($redis, $ch, $msg) use (&$got) {
                $got = [$ch, $msg];
                $redis->close();
            });
        } catch (RedisException $e) {
            if ($got === null) throw $e;
        }
        pcntl_waitpid($pid, $status);
        eq($got, [$k, 'hello'], 'message');
        $sub = connect();
        eq($sub->get('clients:whoami'), $node, 'GET on a new connection');
    },

    'eval' => function ($k) {
        $c = connect();
        $r = $c->eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", [$k, '5'], 1);
        eq($r, [$k, '5', 5], 'EVAL');
    },

    'binary' => function ($k) {
        $c = connect();
        $v = '';
        for ($i = 0; $i < 256; $i++) $v .= chr($i);
        $c->set($k, $v);
        eq($c->get($k), $v, 'GET of all 256 byte values');
    },

    'big' => function ($k) {
        $c = connect();
        $v = big_value();
        $c->set($k, $v);
        eq($c->strlen($k), strlen($v), 'STRLEN');
        $got = $c->get($k);
        if ($got !== $v) {
            throw new CheckFailed('10 MB value differs (got ' . strlen((string)$got) . ' bytes)');
        }
        $c->del($k);
    },
];

foreach ($checks as $name) {
    if (!isset($fns[$name])) {
        echo "fail $name no such check in this script\n";
        continue;
    }
    try {
        $fns[$name]("$prefix$name:");
        echo "ok $name\n";
    } catch (Throwable $e) {
        $msg = get_class($e) . ': ' . $e->getMessage() . ' @ line ' . $e->getLine();
        echo "fail $name " . substr(preg_replace('/\s+/', ' ', $msg), 0, 900) . "\n";
    }
    foreach ($clients as $c) {
        try { $c->close(); } catch (Throwable $e) { }
    }
    $clients = [];
}
