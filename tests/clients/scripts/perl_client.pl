#!/usr/bin/perl
# perl_client.pl -- Redis.pm (Debian's libredis-perl 2.000, RESP2) through zos-proxy, default
# options; Redis.pm takes no URL: `username => NODE, password => PASSWORD` names the node
# (AUTH NODE PASSWORD), and `password` alone is AUTH PASSWORD (check auth_password).
# Prints "ok CHECK" or "fail CHECK DETAIL" per check.
# usage: perl perl_client.pl HOST PORT NODE PASSWORD PREFIX MODE CHECK...
use strict;
use warnings;
use Redis;

my ($host, $port, $node, $password, $prefix, $mode, @checks) = @ARGV;
my $GUARD = 20;    # seconds: read timeout, a no-hang guard
$| = 1;

my @clients;

sub connect_node {
    my (%auth) = @_;
    %auth = (username => $node, password => $password) unless %auth;
    my $c = Redis->new(server => "$host:$port", read_timeout => $GUARD, %auth);
    push @clients, $c;
    return $c;
}

sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return '[' . join(', ', map { show($_) } @$v) . ']' if ref $v eq 'ARRAY';
    return "'" . substr($v, 0, 200) . "'";
}

sub eq_ {
    my ($got, $want, $what) = @_;
    my ($g, $w) = (show($got), show($want));
    die "$what: got $g, want $w\n" unless $g eq $w;
}

sub big_value {
    my $unit = join '', map { chr(($_ * 131) & 0xff) } 0 .. 4095;
    return $unit x (10 * 1024 * 1024 / 4096);
}

my %fns = (
    set_get => sub {
        my ($k) = @_;
        my $c = connect_node();
        eq_($c->get('clients:whoami'), $node, 'GET clients:whoami: wrong node');
        eq_($c->set($k, 'v1'), 'OK', 'SET');
        eq_($c->get($k), 'v1', 'GET');
        eq_($c->get("${k}missing"), undef, 'GET missing');
        eq_($c->incrby("${k}n", 41), 41, 'INCRBY');
        eq_($c->incr("${k}n"), 42, 'INCR');
    },

    pipeline => sub {
        my ($k) = @_;
        my $c = connect_node();
        my $n = 200;
        my @got;
        $c->set("$k$_", "v$_", sub { push @got, $_[0] }) for 0 .. $n - 1;
        $c->get("$k$_", sub { push @got, $_[0] }) for 0 .. $n - 1;
        $c->wait_all_responses;
        eq_(\@got, [('OK') x $n, map { "v$_" } 0 .. $n - 1], 'pipelined replies');
    },

    multi_watch => sub {
        my ($k) = @_;
        my $c     = connect_node();
        my $other = connect_node();
        $c->set($k, 'old');
        eq_($c->watch($k), 'OK', 'WATCH');
        eq_($c->get($k), 'old', 'GET under WATCH');
        $c->multi;
        $c->set($k, 'new');
        $c->get($k);
        eq_([$c->exec], ['OK', 'new'], 'EXEC');
        $c->watch($k);
        $other->set($k, 'other');
        $c->multi;
        $c->set($k, 'mine');
        my @r = $c->exec;
        eq_(\@r, [undef], 'EXEC after the watched key changed');
        eq_($c->get($k), 'other', 'GET');
    },

    blpop => sub {
        my ($k) = @_;
        my $c      = connect_node();
        my $pusher = connect_node();
        my @got;
        $c->blpop($k, 0, sub { @got = @{ $_[0] || [] } });    # sent now, read below
        select(undef, undef, undef, 0.2);    # let BLPOP block first (same result either way)
        eq_($pusher->lpush($k, 'pushed'), 1, 'LPUSH');
        $c->wait_all_responses;
        eq_(\@got, [$k, 'pushed'], 'BLPOP');
        eq_($c->ping, 'PONG', 'PING after BLPOP');
    },

    pubsub => sub {
        my ($k) = @_;
        my $sub = connect_node();
        my $pub = connect_node();
        my @got;
        my $cb = sub { my ($msg, $topic) = @_; @got = ($topic, $msg) };
        $sub->subscribe($k, $cb);
        for (1 .. 100) {
            last if $pub->publish($k, 'hello') >= 1;
            select(undef, undef, undef, 0.1);
        }
        for (1 .. 200) {    # 20 s at most: a no-hang guard
            last if @got;
            $sub->wait_for_messages(0.1);
        }
        eq_(\@got, [$k, 'hello'], 'message');
        $sub->unsubscribe($k, $cb);    # the same callback: Redis.pm counts them
        eq_($sub->get('clients:whoami'), $node, 'GET after UNSUBSCRIBE');
    },

    eval => sub {
        my ($k) = @_;
        my $c = connect_node();
        my $r = $c->eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", 1, $k, '5');
        eq_($r, [$k, '5', 5], 'EVAL');
    },

    binary => sub {
        my ($k) = @_;
        my $c = connect_node();
        my $v = join '', map { chr } 0 .. 255;
        $c->set($k, $v);
        eq_(unpack('H*', $c->get($k)), unpack('H*', $v), 'GET of all 256 byte values');
    },

    big => sub {
        my ($k) = @_;
        my $c = connect_node();
        my $v = big_value();
        $c->set($k, $v);
        eq_($c->strlen($k), length $v, 'STRLEN');
        my $got = $c->get($k);
        die sprintf("10 MB value differs (got %d bytes)\n", length($got // '')) unless defined $got && $got eq $v;
        $c->del($k);
    },

    # No username: AUTH <password> alone picks the node whose password it is.
    auth_password => sub {
        my ($k) = @_;
        my $c = connect_node(password => $password);
        eq_($c->get('clients:whoami'), $node, 'AUTH <password>: wrong node');
        $c->set($k, 'x');
        eq_($c->get($k), 'x', 'GET');
    },
);

for my $name (@checks) {
    my $fn = $fns{$name};
    unless ($fn) {
        print "fail $name no such check in this script\n";
        next;
    }
    my $ok = eval { $fn->("$prefix$name:"); 1 };
    if ($ok) {
        print "ok $name\n";
    } else {
        (my $e = $@ // 'unknown error') =~ s/\s+/ /g;
        print "fail $name ", substr($e, 0, 900), "\n";
    }
    for my $c (@clients) { eval { $c->quit } }
    @clients = ();
}
