// The baseline of `make bench`: the smallest worker workerd can run. edgesync's routes are
// reported as ratios to this, measured in the same run on the same machine.
export default {
  async fetch() {
    return new Response('{"hello":"world"}', { headers: { "content-type": "application/json" } });
  },
};
