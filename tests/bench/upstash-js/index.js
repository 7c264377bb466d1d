// The peer edgesync is measured against in `make bench`: what a user would write instead —
// a JS worker with the official `@upstash/redis` SDK (pinned in package-lock.json) reading
// the same price key through the same Upstash-REST gateway on every request.
import { Redis } from "@upstash/redis/cloudflare";

export default {
  async fetch(request, env) {
    const redis = Redis.fromEnv(env);
    // PIPELINE=1 asks for what edgesync's price route asks (`cached` with its TTL, then
    // `latest`) in one pipeline, to tell the cost of the commands from the cost of the code.
    const price = env.PIPELINE === "1"
      ? await redis.pipeline().get(env.CACHED_KEY).pttl(env.CACHED_KEY).get(env.PRICE_KEY).exec()
          .then(([cached, , latest]) => cached ?? latest)
      : await redis.get(env.PRICE_KEY);
    if (price === null) {
      return new Response(JSON.stringify({ error: { code: "not_found", message: "no price" } }), {
        status: 404,
        headers: { "content-type": "application/json" },
      });
    }
    return new Response(JSON.stringify(price), { headers: { "content-type": "application/json" } });
  },
};
