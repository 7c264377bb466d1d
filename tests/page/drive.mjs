// Drives edgesync's page in Debian's headless Chromium (playwright-core, pinned in
// package-lock.json) and prints what a user would see, as JSON, for tests/tests/page.rs:
//   node tests/page/drive.mjs <page url> '<options json>'
// options: token (put in sessionStorage before the page loads), typeToken (typed into the
// form after the first refresh), screenshot (a PNG path), viewport ({width, height}), query
// (appended to the page URL), watchMs (after the first refresh, count the requests the page
// makes in this window: a measurement, not a wait for something).
// Every request the browser makes is listed, so the test can check none leaves the worker.
import { chromium } from "playwright-core";

const [url, optionsText] = process.argv.slice(2);
const options = JSON.parse(optionsText ?? "{}");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Background networking would try hosts this machine cannot (and must not) reach.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
try {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1200, height: 900 } });
  const requests = [];
  context.on("request", (request) => requests.push(request.url()));
  if (typeof options.token === "string") {
    await context.addInitScript((token) => sessionStorage.setItem("edgesync.read-token", token), options.token);
  }
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url + (options.query ?? ""));
  await page.waitForFunction(() => document.body.dataset.ready === "1", null, { timeout: 30_000 });
  let watched = null;
  if (typeof options.watchMs === "number") {
    const from = requests.length;
    await page.waitForTimeout(options.watchMs);
    const during = requests.slice(from);
    watched = { ms: options.watchMs, requests: during.length, health: during.filter((u) => new URL(u).pathname === "/health").length };
  }
  if (typeof options.typeToken === "string") {
    const before = await page.evaluate(() => Number(document.body.dataset.refreshes));
    await page.fill("#token", options.typeToken);
    await page.click("#token-form button");
    await page.waitForFunction((n) => Number(document.body.dataset.refreshes) > n, before, { timeout: 30_000 });
  }
  const seen = await page.evaluate(() => ({
    charts: Object.fromEntries([...document.querySelectorAll(".card")].map((card) =>
      [card.dataset.symbol, Number(card.querySelector(".chart").dataset.points)])),
    canvases: document.querySelectorAll(".chart canvas").length,
    prices: Object.fromEntries([...document.querySelectorAll(".card")].map((card) =>
      [card.dataset.symbol, card.querySelector('[data-field="price"]').textContent])),
    tasks: Object.fromEntries([...document.querySelectorAll("#tasks tr[data-task]")].map((row) =>
      [row.dataset.task, row.children[1].dataset.state])),
    store: document.getElementById("store").dataset.state,
    banner: { state: document.getElementById("banner").dataset.state, text: document.getElementById("banner").textContent },
    private: document.getElementById("private").dataset.state,
    privateMessage: document.getElementById("private-message").textContent,
    positions: document.querySelectorAll("[data-position]").length,
    costs: document.querySelectorAll("[data-cost]").length,
    // Each cost row's cells as shown, and whether its last (ROI) cell lies inside the window.
    costCells: Object.fromEntries([...document.querySelectorAll("[data-cost]")].map((row) =>
      [row.dataset.cost, [...row.children].map((cell) => cell.textContent)])),
    roiVisible: [...document.querySelectorAll("[data-cost]")].every((row) => {
      const box = row.lastElementChild.getBoundingClientRect();
      return box.width > 0 && box.right <= window.innerWidth;
    }),
    token: sessionStorage.getItem("edgesync.read-token"),
    scrollWidth: document.documentElement.scrollWidth,
    refreshEvery: { text: document.getElementById("refresh-every").textContent, clamped: document.getElementById("refresh-every").dataset.clamped },
  }));
  if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
  console.log(JSON.stringify({ ...seen, watched, errors, requests }));
} finally {
  await browser.close();
}
