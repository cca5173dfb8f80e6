-- lua_client.lua -- redis-lua (Debian's lua-redis 2.0.5, RESP2, Lua 5.1) through zos-proxy,
-- default options; redis-lua takes no URL: client:auth(NODE, PASSWORD) names the node.
-- Prints "ok CHECK" or "fail CHECK DETAIL" per check.
-- usage: lua5.1 lua_client.lua HOST PORT NODE PASSWORD PREFIX MODE CHECK...
--        (MODE "push KEY": the helper process of the blpop check)
local redis = require('redis')
local socket = require('socket')

local host, port, node, password, prefix, mode = arg[1], tonumber(arg[2]), arg[3], arg[4], arg[5], arg[6]
local GUARD = 20 -- seconds: socket timeout, a no-hang guard

local clients = {}

local function connect(pass_only)
    local c = redis.connect({ host = host, port = port, timeout = GUARD })
    table.insert(clients, c)
    if pass_only then
        c:auth(password)
    else
        c:auth(node, password)
    end
    return c
end

local function show(v)
    if type(v) == 'table' then
        local parts = {}
        for i = 1, #v do parts[i] = show(v[i]) end
        return '[' .. table.concat(parts, ', ') .. ']'
    end
    if type(v) == 'string' then return "'" .. v:sub(1, 200) .. "'" end
    return tostring(v)
end

local function eq(got, want, what)
    local g, w = show(got), show(want)
    if g ~= w then error(string.format('%s: got %s, want %s', what, g, w), 0) end
end

local function big_value()
    local bytes = {}
    for i = 0, 4095 do bytes[#bytes + 1] = string.char((i * 131) % 256) end
    return string.rep(table.concat(bytes), 10 * 1024 * 1024 / 4096)
end

if mode == 'push' then -- the other connection of the blpop check
    socket.sleep(0.2) -- let BLPOP block first (the result is the same either way)
    connect():lpush(arg[7], 'pushed')
    os.exit(0)
end

local checks = {}

function checks.set_get(k)
    local c = connect()
    eq(c:get('clients:whoami'), node, 'GET clients:whoami: wrong node')
    eq(c:set(k, 'v1'), true, 'SET')
    eq(c:get(k), 'v1', 'GET')
    eq(c:get(k .. 'missing'), nil, 'GET missing')
    eq(c:incrby(k .. 'n', 41), 41, 'INCRBY')
    eq(c:incr(k .. 'n'), 42, 'INCR')
end

function checks.pipeline(k)
    local c = connect()
    local n = 200
    local replies = c:pipeline(function(p)
        for i = 0, n - 1 do p:set(k .. i, 'v' .. i) end
        for i = 0, n - 1 do p:get(k .. i) end
    end)
    local want = {}
    for i = 1, n do want[i] = true end
    for i = 0, n - 1 do want[n + i + 1] = 'v' .. i end
    eq(replies, want, 'pipelined replies')
end

function checks.multi_watch(k)
    local c, other = connect(), connect()
    c:set(k, 'old')
    eq(c:watch(k), true, 'WATCH')
    eq(c:get(k), 'old', 'GET under WATCH')
    eq(c:multi(), true, 'MULTI')
    c:set(k, 'new')
    c:get(k)
    eq(c:exec(), { true, 'new' }, 'EXEC') -- redis-lua maps +OK to true
    c:watch(k)
    other:set(k, 'other')
    c:multi()
    c:set(k, 'mine')
    eq(c:exec(), nil, 'EXEC after the watched key changed')
    eq(c:get(k), 'other', 'GET')
end

function checks.blpop(k)
    local c = connect()
    local helper = io.popen(string.format("'%s' '%s' %s %d '%s' '%s' '%s' push '%s'",
        arg[-1], arg[0], host, port, node, password, prefix, k))
    local got = c:blpop(k, 0)
    helper:close()
    eq(got, { k, 'pushed' }, 'BLPOP')
    eq(c:ping(), true, 'PING after BLPOP')
end

function checks.pubsub(k)
    local sub, pub = connect(), connect()
    eq(sub:subscribe(k), { 'subscribe', k, 1 }, 'SUBSCRIBE')
    for _ = 1, 100 do
        if pub:publish(k, 'hello') >= 1 then break end
        socket.sleep(0.1)
    end
    local next_message = sub:pubsub() -- the library's consumer loop, without subscribing again
    local msg = next_message()
    eq({ msg.kind, msg.channel, msg.payload }, { 'message', k, 'hello' }, 'message')
    eq(sub:unsubscribe(k), { 'unsubscribe', k, 0 }, 'UNSUBSCRIBE')
    eq(sub:get('clients:whoami'), node, 'GET after UNSUBSCRIBE')
end

function checks.eval(k)
    local c = connect()
    eq(c:eval("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", 1, k, '5'),
        { k, '5', 5 }, 'EVAL')
end

function checks.binary(k)
    local c = connect()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local v = table.concat(bytes)
    c:set(k, v)
    local got = c:get(k)
    if got ~= v then error('all 256 byte values came back as ' .. show(got), 0) end
end

function checks.big(k)
    local c = connect()
    local v = big_value()
    c:set(k, v)
    eq(c:strlen(k), #v, 'STRLEN')
    local got = c:get(k)
    if got ~= v then error(string.format('10 MB value differs (got %d bytes)', #(got or '')), 0) end
    c:del(k)
end

-- No username: AUTH <password> alone picks the node whose password it is.
function checks.auth_password(k)
    local c = connect(true)
    eq(c:get('clients:whoami'), node, 'AUTH <password>: wrong node')
end

io.stdout:setvbuf('line')
for i = 7, #arg do
    local name = arg[i]
    local fn = checks[name]
    if not fn then
        print('fail ' .. name .. ' no such check in this script')
    else
        local ok, err = pcall(fn, prefix .. name .. ':')
        if ok then
            print('ok ' .. name)
        else
            print('fail ' .. name .. ' ' .. tostring(err):gsub('%s+', ' '):sub(1, 900))
        end
    end
    for _, c in ipairs(clients) do pcall(function() c:quit() end) end
    clients = {}
end
