// The CPU bench's way of running a worker: workerd through Miniflare, configured from the
// worker's wrangler.toml as `wrangler dev` configures it, without the two hops `wrangler dev`
// adds that a deployed worker does not run — its proxy worker in front of every incoming
// request, and Miniflare's "strip CF-Connecting-IP" worker in front of every outgoing one
// (each subrequest is dispatched to that second JavaScript worker, which copies the headers
// and fetches again: it roughly doubles what a subrequest costs; docs/benchmarks.md).
//
// node tests/bench/workerd.mjs --config wrangler.toml --port P --inspector-port I
//   [--persist DIR] [--var NAME:VALUE]...
// Listens on 127.0.0.1 only; `/cdn-cgi/handler/scheduled?cron=…` fires the cron, as under
// `wrangler dev --test-scheduled`. Prints "ready <url>" once it answers; stops on SIGTERM.
import { resolve, dirname } from "node:path";
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

function parse(argv) {
  const options = { vars: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case "--config": options.config = value; break;
      case "--port": options.port = Number(value); break;
      case "--inspector-port": options.inspectorPort = Number(value); break;
      case "--persist": options.persist = value; break;
      case "--var": {
        const at = value.indexOf(":");
        if (at < 1) throw new Error(`--var wants NAME:VALUE, got ${value}`);
        options.vars[value.slice(0, at)] = value.slice(at + 1);
        break;
      }
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  if (!options.config || !options.port) throw new Error("--config and --port are required");
  return options;
}

const options = parse(process.argv.slice(2));
const config = resolve(options.config);
const { workerOptions, main } = unstable_getMiniflareWorkerOptions(config);
const scriptPath = resolve(dirname(config), main);
const mf = new Miniflare({
  ...workerOptions,
  name: "worker",
  modules: true,
  // worker-build's output is ES modules throughout (the wasm imported as a compiled module).
  modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...(workerOptions.modulesRules ?? [])],
  scriptPath,
  // Module names are paths below this (workerd refuses a `..` out of it).
  modulesRoot: dirname(config),
  bindings: { ...workerOptions.bindings, ...options.vars },
  stripCfConnectingIp: false,
  unsafeTriggerHandlers: true,
  host: "127.0.0.1",
  port: options.port,
  inspectorPort: options.inspectorPort,
  durableObjectsPersist: options.persist ?? false,
  // The placeholder `request.cf`: Miniflare would otherwise fetch one from the internet.
  cf: false,
  log: new Log(LogLevel.INFO),
});
const url = await mf.ready;
console.log(`ready ${url}`);
process.on("SIGTERM", () => mf.dispose().then(() => process.exit(0)));
process.on("SIGINT", () => mf.dispose().then(() => process.exit(0)));
