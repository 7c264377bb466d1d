// The peer edgesync is measured against in `make bench`: what a user would write instead —
// a JS worker with the official `@upstash/redis` SDK (pinned in package-lock.json) reading
// the same price key through the same Upstash-REST gateway on every request.
import { Redis } from "@upstash/redis/cloudflare";

export default {
  async fetch(request, env) {
    const redis = Redis.fromEnv(env);
    const price = await redis.get(env.PRICE_KEY);
    if (price === null) {
      return new Response(JSON.stringify({ error: { code: "not_found", message: "no price" } }), {
        status: 404,
        headers: { "content-type": "application/json" },
      });
    }
    return new Response(JSON.stringify(price), { headers: { "content-type": "application/json" } });
  },
};
