// redigo_client.go -- redigo (Debian's golang-github-gomodule-redigo-dev 1.8, RESP2) through
// zos-proxy: redis.DialURL with the URL naming the node, default options (a read timeout as
// a no-hang guard).  Prints "ok CHECK" or "fail CHECK DETAIL" per check.
// usage: redigo_client HOST PORT NODE PASSWORD PREFIX MODE CHECK...
package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

const guard = 20 * time.Second // a no-hang guard, not a time bound

var host, port, node, password, prefix string
var conns []redis.Conn

func dial(u string) redis.Conn {
	c, err := redis.DialURL(u, redis.DialReadTimeout(guard), redis.DialConnectTimeout(guard))
	if err != nil {
		panic(fmt.Sprintf("DialURL: %v", err))
	}
	conns = append(conns, c)
	return c
}

func connect() redis.Conn {
	u := url.URL{Scheme: "redis", User: url.UserPassword(node, password), Host: host + ":" + port}
	return dial(u.String())
}

func eq(got, want interface{}, what string) {
	if !reflect.DeepEqual(got, want) {
		g := fmt.Sprintf("%#v", got)
		if len(g) > 300 {
			g = g[:300]
		}
		panic(fmt.Sprintf("%s: got %s, want %#v", what, g, want))
	}
}

func must(v interface{}, err error) interface{} {
	if err != nil {
		panic(err.Error())
	}
	return v
}

func str(v interface{}, err error) string   { return must(redis.String(v, err)).(string) }
func num(v interface{}, err error) int64    { return must(redis.Int64(v, err)).(int64) }
func strs(v interface{}, err error) []string { return must(redis.Strings(v, err)).([]string) }

func bigValue() []byte {
	b := make([]byte, 10*1024*1024)
	for i := range b {
		b[i] = byte((i*131 + (i >> 13)) & 0xff)
	}
	return b
}

var checks = map[string]func(k string){
	"set_get": func(k string) {
		c := connect()
		eq(str(c.Do("GET", "clients:whoami")), node, "GET clients:whoami: wrong node")
		eq(str(c.Do("SET", k, "v1")), "OK", "SET")
		eq(str(c.Do("GET", k)), "v1", "GET")
		v, err := c.Do("GET", k+"missing")
		eq([]interface{}{v, err}, []interface{}{nil, nil}, "GET missing")
		eq(num(c.Do("INCRBY", k+"n", 41)), int64(41), "INCRBY")
		eq(num(c.Do("INCR", k+"n")), int64(42), "INCR")
	},

	"pipeline": func(k string) {
		c := connect()
		const n = 500
		for i := 0; i < n; i++ {
			must(nil, c.Send("SET", fmt.Sprintf("%s%d", k, i), fmt.Sprintf("v%d", i)))
		}
		for i := 0; i < n; i++ {
			must(nil, c.Send("GET", fmt.Sprintf("%s%d", k, i)))
		}
		must(nil, c.Flush())
		for i := 0; i < n; i++ {
			eq(str(c.Receive()), "OK", "pipelined SET")
		}
		for i := 0; i < n; i++ {
			eq(str(c.Receive()), fmt.Sprintf("v%d", i), "pipelined GET")
		}
	},

	"multi_watch": func(k string) {
		c, other := connect(), connect()
		must(c.Do("SET", k, "old"))
		eq(str(c.Do("WATCH", k)), "OK", "WATCH")
		eq(str(c.Do("GET", k)), "old", "GET under WATCH")
		must(nil, c.Send("MULTI"))
		must(nil, c.Send("SET", k, "new"))
		must(nil, c.Send("GET", k))
		eq(strs(c.Do("EXEC")), []string{"OK", "new"}, "EXEC")
		must(c.Do("WATCH", k))
		must(other.Do("SET", k, "other"))
		must(nil, c.Send("MULTI"))
		must(nil, c.Send("SET", k, "mine"))
		v, err := c.Do("EXEC")
		eq([]interface{}{v, err}, []interface{}{nil, nil}, "EXEC after the watched key changed")
		eq(str(c.Do("GET", k)), "other", "GET")
	},

	"blpop": func(k string) {
		c, pusher := connect(), connect()
		done := make(chan error, 1)
		go func() {
			time.Sleep(200 * time.Millisecond) // let BLPOP block first (same result either way)
			_, err := pusher.Do("LPUSH", k, "pushed")
			done <- err
		}()
		eq(strs(c.Do("BLPOP", k, 0)), []string{k, "pushed"}, "BLPOP")
		must(nil, <-done)
		eq(str(c.Do("PING")), "PONG", "PING after BLPOP")
	},

	"pubsub": func(k string) {
		raw, pub := connect(), connect()
		sub := redis.PubSubConn{Conn: raw}
		must(nil, sub.Subscribe(k))
		s, ok := sub.Receive().(redis.Subscription)
		eq([]interface{}{ok, s.Kind, s.Channel, s.Count}, []interface{}{true, "subscribe", k, 1}, "SUBSCRIBE")
		for i := 0; i < 100 && num(pub.Do("PUBLISH", k, "hello")) < 1; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		switch m := sub.Receive().(type) {
		case redis.Message:
			eq([]string{m.Channel, string(m.Data)}, []string{k, "hello"}, "message")
		default:
			panic(fmt.Sprintf("want a message, got %#v", m))
		}
		must(nil, sub.Unsubscribe(k))
		s, ok = sub.Receive().(redis.Subscription)
		eq([]interface{}{ok, s.Kind, s.Count}, []interface{}{true, "unsubscribe", 0}, "UNSUBSCRIBE")
		eq(str(raw.Do("GET", "clients:whoami")), node, "GET after UNSUBSCRIBE")
	},

	"eval": func(k string) {
		c := connect()
		r := must(redis.Values(c.Do("EVAL",
			"return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}", 1, k, "5"))).([]interface{})
		eq([]interface{}{string(r[0].([]byte)), string(r[1].([]byte)), r[2]},
			[]interface{}{k, "5", int64(5)}, "EVAL")
	},

	"binary": func(k string) {
		c := connect()
		v := make([]byte, 256)
		for i := range v {
			v[i] = byte(i)
		}
		must(c.Do("SET", k, v))
		got := must(redis.Bytes(c.Do("GET", k))).([]byte)
		if !bytes.Equal(got, v) {
			panic(fmt.Sprintf("all 256 byte values came back as %x", got))
		}
	},

	"big": func(k string) {
		c := connect()
		v := bigValue()
		must(c.Do("SET", k, v))
		eq(num(c.Do("STRLEN", k)), int64(len(v)), "STRLEN")
		got := must(redis.Bytes(c.Do("GET", k))).([]byte)
		if !bytes.Equal(got, v) {
			panic(fmt.Sprintf("10 MB value differs (got %d bytes)", len(got)))
		}
		must(c.Do("DEL", k))
	},

	// No username in the URL: AUTH <password> alone picks the node whose password it is
	// (what go-redis v5 and other clients without ACL support send).
	"auth_password": func(k string) {
		u := url.URL{Scheme: "redis", User: url.UserPassword("", password), Host: host + ":" + port}
		c := dial(u.String())
		eq(str(c.Do("GET", "clients:whoami")), node, "AUTH <password>: wrong node")
	},
}

func run(name string) (detail string) {
	defer func() {
		if r := recover(); r != nil {
			detail = strings.Join(strings.Fields(fmt.Sprint(r)), " ")
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}()
	checks[name](prefix + name + ":")
	return ""
}

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: redigo_client HOST PORT NODE PASSWORD PREFIX MODE CHECK...")
		os.Exit(2)
	}
	host, port, node, password, prefix = os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	for _, name := range os.Args[7:] {
		if checks[name] == nil {
			fmt.Printf("fail %s no such check in this program\n", name)
			continue
		}
		if d := run(name); d != "" {
			if len(d) > 900 {
				d = d[:900]
			}
			fmt.Printf("fail %s %s\n", name, d)
		} else {
			fmt.Printf("ok %s\n", name)
		}
	}
}
