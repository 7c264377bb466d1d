// The baseline of `make bench`: the smallest worker workerd can run. edgesync's routes are
// reported as ratios to this, measured in the same run on the same machine.
// `?fetch=URL&n=N` makes N sequential subrequests to URL and reads each body whole: what any
// worker pays the runtime per subrequest, the floor of the CPU bench's per-subrequest cost.
export default {
  async fetch(request) {
    const params = new URL(request.url).searchParams;
    const target = params.get("fetch");
    if (target) {
      let bytes = 0;
      for (let i = 0; i < Number(params.get("n") || 1); i++) {
        bytes += (await (await fetch(target)).arrayBuffer()).byteLength;
      }
      return new Response(JSON.stringify({ bytes }), { headers: { "content-type": "application/json" } });
    }
    return new Response('{"hello":"world"}', { headers: { "content-type": "application/json" } });
  },
};
