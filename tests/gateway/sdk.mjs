// The official @upstash/redis SDK (pinned in package-lock.json) against edgesync-gateway:
//   node tests/gateway/sdk.mjs <url> <token> <scenario>
// prints what the SDK returned, as JSON, for tests/tests/gateway.rs to check (and to check
// against redis-server directly). Scenarios: `everyday` (what edgesync and a typical user
// run), `read-only` (a read-only token's reads and refused writes), `subscribe` (the SDK's
// Subscriber on a channel and a pattern, fed by PUBLISH through the gateway), `cluster`
// (`everyday` as a Redis Cluster user writes it: keys spread over the masters, multi-key
// commands and transactions on one hash tag; and a transaction across slots, refused).
import { Redis } from "@upstash/redis";

const [url, token, scenario] = process.argv.slice(2);
const redis = new Redis({ url, token, enableTelemetry: false });
const out = {};
const attempt = async (name, run) => {
  try {
    out[name] = await run();
  } catch (error) {
    out[name] = { error: String(error.message ?? error) };
  }
};

// What every user runs: strings, JSON, non-ASCII, TTLs, hashes, sorted sets, sets, counters.
const basics = async () => {
  await attempt("set", () => redis.set("sdk:str", "hello"));
  await attempt("str", () => redis.get("sdk:str"));
  await attempt("json", async () => { await redis.set("sdk:json", { price: "0.0150", n: 3 }); return redis.get("sdk:json"); });
  await attempt("unicode", async () => { await redis.set("sdk:uni", "ünïcødé ✓"); return redis.get("sdk:uni"); });
  await attempt("ttl", async () => { await redis.set("sdk:ttl", "x", { ex: 100 }); return redis.ttl("sdk:ttl"); });
  await attempt("hash", async () => { await redis.hset("sdk:hash", { a: "1", b: "two" }); return redis.hgetall("sdk:hash"); });
  await attempt("zset", async () => {
    await redis.zadd("sdk:z", { score: 1, member: "one" }, { score: 2, member: "two" });
    return redis.zrange("sdk:z", 0, -1, { withScores: true });
  });
  await attempt("set_members", async () => { await redis.sadd("sdk:s", "x", "y"); return (await redis.smembers("sdk:s")).sort(); });
  await attempt("incr", () => redis.incr("sdk:n"));
};

if (scenario === "everyday") {
  await basics();
  await attempt("pipeline", () => { const p = redis.pipeline(); p.set("sdk:p", "1"); p.incr("sdk:p"); p.get("sdk:p"); return p.exec(); });
  await attempt("multi", () => { const m = redis.multi(); m.set("sdk:m", "a"); m.append("sdk:m", "b"); m.get("sdk:m"); return m.exec(); });
  await attempt("del", () => redis.del("sdk:str", "sdk:missing"));
  await attempt("gone", () => redis.get("sdk:str"));
  await attempt("flushall", () => redis.flushall());
} else if (scenario === "cluster") {
  await basics();
  await attempt("pipeline", () => {
    const p = redis.pipeline();
    p.set("sdk:p", "1"); p.incr("sdk:p"); p.set("sdk:q", "q"); p.get("sdk:p"); p.get("sdk:q"); p.get("sdk:str");
    return p.exec();
  });
  await attempt("multi", () => { const m = redis.multi(); m.set("{sdk}:m", "a"); m.append("{sdk}:m", "b"); m.set("{sdk}:m2", "c"); m.get("{sdk}:m"); return m.exec(); });
  await attempt("cross_slot_multi", () => { const m = redis.multi(); m.set("sdk:a", "1"); m.set("sdk:b", "2"); return m.exec(); });
  await attempt("mget", () => redis.mget("{sdk}:m", "{sdk}:m2", "{sdk}:none"));
  await attempt("cross_slot_mget", () => redis.mget("sdk:str", "sdk:json"));
  await attempt("del", () => redis.del("sdk:str"));
  await attempt("gone", () => redis.get("sdk:str"));
  await attempt("dbsize", () => redis.dbsize());
  await attempt("flushall", () => redis.flushall());
} else if (scenario === "read-only") {
  await attempt("get", () => redis.get("sdk:json"));
  await attempt("hgetall", () => redis.hgetall("sdk:hash"));
  await attempt("set", () => redis.set("sdk:json", "overwritten"));
  await attempt("del", () => redis.del("sdk:hash"));
} else if (scenario === "subscribe") {
  // Resolves with the first event `type` of `subscriber`, or an error after 10 s.
  const first = (subscriber, type) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within 10 s`)), 10_000);
      subscriber.on(type, (event) => { clearTimeout(timer); resolve(event); });
    });
  await attempt("channel", async () => {
    const subscriber = redis.subscribe(["sdk:news"]);
    const subscribed = await first(subscriber, "subscribe");
    const message = first(subscriber, "message");
    const receivers = await redis.publish("sdk:news", { price: "0.0150" });
    const got = await message;
    await subscriber.unsubscribe();
    return { subscribed, receivers, channel: got.channel, message: got.message };
  });
  await attempt("pattern", async () => {
    const subscriber = redis.psubscribe(["sdk:price:*"]);
    await first(subscriber, "psubscribe");
    const message = first(subscriber, "pmessage");
    // JSON: the SDK parses pattern messages as JSON (a plain string fails its parse).
    await redis.publish("sdk:price:QRLUSDT", { note: "a comma, and a second line\nhere" });
    const got = await message;
    await subscriber.unsubscribe();
    return got;
  });
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
console.log(JSON.stringify(out));
