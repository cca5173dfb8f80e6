# ruby_client.rb -- redis-rb (Debian's ruby-redis 4.8, RESP2) through zos-proxy, default
# options, the URL naming the node.  Prints "ok CHECK" or "fail CHECK DETAIL" per check.
# usage: ruby ruby_client.rb HOST PORT NODE PASSWORD PREFIX MODE CHECK...
require 'redis'
require 'cgi'

HOST, PORT, NODE, PASSWORD, PREFIX, MODE, *CHECKS = ARGV
URL = "redis://#{CGI.escape(NODE)}:#{CGI.escape(PASSWORD)}@#{HOST}:#{PORT}"
GUARD = 20 # seconds: read timeout, a no-hang guard
$stdout.sync = true

class CheckFailed < StandardError; end

def eq(got, want, what = '')
  return if got == want
  raise CheckFailed, "#{what}: got #{got.inspect[0, 300]}, want #{want.inspect[0, 300]}"
end

$clients = []
def connect
  c = Redis.new(url: URL, timeout: GUARD)
  $clients << c
  c
end

def big_value
  unit = (0...4096).map { |i| (i * 131) & 0xff }.pack('C*')
  unit * (10 * 1024 * 1024 / unit.bytesize)
end

CHECK_FNS = {
  'set_get' => lambda do |k|
    c = connect
    eq(c.get('clients:whoami'), NODE, 'GET clients:whoami: wrong node')
    eq(c.set(k, 'v1'), 'OK', 'SET')
    eq(c.get(k), 'v1', 'GET')
    eq(c.get(k + 'missing'), nil, 'GET missing')
    eq(c.incrby(k + 'n', 41), 41, 'INCRBY')
    eq(c.incr(k + 'n'), 42, 'INCR')
  end,

  'pipeline' => lambda do |k|
    c = connect
    n = 200
    r = c.pipelined do |p|
      n.times { |i| p.set("#{k}#{i}", "v#{i}") }
      n.times { |i| p.get("#{k}#{i}") }
    end
    eq(r, ['OK'] * n + (0...n).map { |i| "v#{i}" }, 'pipelined replies')
  end,

  'multi_watch' => lambda do |k|
    c = connect
    other = connect
    c.set(k, 'old')
    r = c.watch(k) do
      eq(c.get(k), 'old', 'GET under WATCH')
      c.multi do |m|
        m.set(k, 'new')
        m.get(k)
      end
    end
    eq(r, %w[OK new], 'EXEC')
    r = c.watch(k) do
      other.set(k, 'other')
      c.multi { |m| m.set(k, 'mine') }
    end
    eq(r, nil, 'EXEC after the watched key changed')
    eq(c.get(k), 'other', 'GET')
  end,

  'blpop' => lambda do |k|
    c = connect
    pusher = connect
    t = Thread.new do
      sleep 0.2 # let BLPOP block first (the result is the same either way)
      pusher.lpush(k, 'pushed')
    end
    eq(c.blpop(k, timeout: 0), [k, 'pushed'], 'BLPOP')
    t.join(GUARD)
    eq(c.ping, 'PONG', 'PING after BLPOP')
  end,

  'pubsub' => lambda do |k|
    sub = connect
    pub = connect
    got = nil
    sub.subscribe(k) do |on|
      on.subscribe do |_ch, _count|
        100.times do
          break if pub.publish(k, 'hello') >= 1
          sleep 0.1
        end
      end
      on.message do |ch, msg|
        got = [ch, msg]
        sub.unsubscribe(k)
      end
    end
    eq(got, [k, 'hello'], 'message')
    eq(sub.get('clients:whoami'), NODE, 'GET after UNSUBSCRIBE')
  end,

  'eval' => lambda do |k|
    c = connect
    r = c.eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", keys: [k], argv: ['5'])
    eq(r, [k, '5', 5], 'EVAL')
  end,

  'binary' => lambda do |k|
    c = connect
    v = (0..255).to_a.pack('C*')
    c.set(k, v)
    eq(c.get(k).b, v, 'GET of all 256 byte values')
  end,

  'big' => lambda do |k|
    c = connect
    v = big_value
    c.set(k, v)
    eq(c.strlen(k), v.bytesize, 'STRLEN')
    got = c.get(k)
    raise CheckFailed, "10 MB value differs (got #{got&.bytesize} bytes)" unless got && got.b == v
    c.del(k)
  end
}.freeze

CHECKS.each do |name|
  fn = CHECK_FNS[name]
  if fn.nil?
    puts "fail #{name} no such check in this script"
    next
  end
  begin
    fn.call("#{PREFIX}#{name}:")
    puts "ok #{name}"
  rescue StandardError => e
    where = (e.backtrace || []).grep(/ruby_client/).first(2).join(' | ')
    puts "fail #{name} #{e.class}: #{e.message} @ #{where}".gsub(/\s+/, ' ')[0, 900]
  ensure
    $clients.each do |c|
      c.close
    rescue StandardError
      nil
    end
    $clients = []
  end
end
