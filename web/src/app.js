// The trader's page: prices and their history as charts, the 24 h ticker, each sync task's
// state, the store tier and its health — and, with the read token, positions, cost basis and
// P&L. Everything comes from this worker's own API; nothing is loaded from anywhere else.
// Prices are shown as the exact decimal strings the API sends; only the chart plots numbers.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./app.css";

const TOKEN_KEY = "edgesync.read-token";
// `?refresh=` seconds between refreshes, 15 by default and never under 1: a 0, a negative
// or a non-number would otherwise poll the worker as fast as the browser can.
const DEFAULT_REFRESH_S = 15;
const MIN_REFRESH_S = 1;
const ASKED_REFRESH_S = Number(new URLSearchParams(location.search).get("refresh") ?? DEFAULT_REFRESH_S);
const REFRESH_S = Number.isFinite(ASKED_REFRESH_S) ? Math.max(MIN_REFRESH_S, ASKED_REFRESH_S) : DEFAULT_REFRESH_S;
const REFRESH_MS = REFRESH_S * 1000;
const STALE_TIERS = new Set(["memory-stale", "durable-stale"]);
const charts = new Map();
let refreshes = 0;

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child ?? "");
  return node;
}

/** GET a path of this worker: {status, body, stale}. Never throws. */
async function get(path, token) {
  try {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const response = await fetch(path, { headers, cache: "no-store" });
    const body = await response.json().catch(() => null);
    const stale = STALE_TIERS.has(response.headers.get("x-edgesync-tier") ?? "");
    return { status: response.status, body, stale };
  } catch (error) {
    return { status: 0, body: { error: { message: String(error) } }, stale: false };
  }
}

function when(ms) {
  const n = Number(ms);
  return Number.isFinite(n) && n > 0 ? new Date(n).toLocaleString() : "—";
}

function symbolCard(symbol) {
  let card = document.querySelector(`.card[data-symbol="${symbol}"]`);
  if (card) return card;
  card = element("article", { class: "card", "data-symbol": symbol },
    element("h2", {}, symbol),
    element("div", { class: "price", "data-field": "price" }, "—"),
    element("dl", { "data-field": "ticker" }),
    element("div", { class: "chart", "data-points": "0", role: "img", "aria-label": `${symbol} price history` }));
  $("symbols").append(card);
  return card;
}

function drawChart(card, symbol, entries) {
  const box = card.querySelector(".chart");
  const points = entries
    .map((e) => [Number(e.ts) / 1000, Number(e.price)])
    .filter(([t, p]) => Number.isFinite(t) && Number.isFinite(p))
    .sort((a, b) => a[0] - b[0]);
  box.dataset.points = String(points.length);
  const data = [points.map((p) => p[0]), points.map((p) => p[1])];
  const width = Math.max(box.clientWidth, 280);
  let chart = charts.get(symbol);
  if (!chart) {
    chart = new uPlot({
      width, height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: symbol, stroke: "#0969da", width: 2, points: { show: points.length < 60 } }],
      // Prices differ in the 4th or 5th digit: label with enough of them.
      axes: [{}, { size: 80, values: (u, ticks) => ticks.map((v) => String(Number(v.toPrecision(6)))) }],
    }, data, box);
    charts.set(symbol, chart);
  } else {
    chart.setData(data);
    chart.setSize({ width, height: 220 });
  }
}

function tickerList(ticker) {
  const fields = [["24h change", ticker?.priceChangePercent, "%"], ["high", ticker?.highPrice], ["low", ticker?.lowPrice], ["volume", ticker?.volume]];
  return fields.flatMap(([name, value, unit]) => [element("dt", {}, name), element("dd", {}, value != null && value !== "" ? `${value}${unit ?? ""}` : "—")]);
}

async function refreshSymbol(symbol) {
  const card = symbolCard(symbol);
  const [history, price, ticker] = await Promise.all([
    get(`/v1/price/${symbol}/history?limit=1000`),
    get(`/v1/price/${symbol}`),
    get(`/v1/ticker/${symbol}`),
  ]);
  const entries = history.status === 200 ? history.body.entries ?? [] : [];
  drawChart(card, symbol, entries);
  card.querySelector('[data-field="price"]').textContent = price.status === 200 ? price.body.price : "—";
  card.querySelector('[data-field="ticker"]').replaceChildren(...tickerList(ticker.status === 200 ? ticker.body : null));
  return { synced: entries.length > 0 || price.status === 200, stale: history.stale || price.stale };
}

function renderTasks(tasks) {
  const rows = Object.entries(tasks ?? {}).map(([name, task]) =>
    element("tr", { "data-task": name },
      element("td", {}, name),
      element("td", { "data-state": task.state ?? "unknown" }, task.state ?? "unknown"),
      element("td", {}, when(task.last_ok)),
      element("td", {}, task.runs ?? "0")));
  $("tasks").tBodies[0].replaceChildren(...rows);
}

function renderStore(health, stale) {
  const badge = $("store");
  const redisDown = typeof health?.redis === "string" && health.redis.startsWith("unavailable");
  const state = !health ? "down" : stale || redisDown ? "stale" : health.status === "ok" ? "ok" : "degraded";
  badge.dataset.state = state;
  badge.textContent = health ? `${health.store}${redisDown ? " (down)" : ""} · ${health.status}` : "unreachable";
  return { state, redisDown };
}

function banner(state, text) {
  const node = $("banner");
  node.dataset.state = state;
  node.textContent = text;
  node.hidden = state === "none";
}

// Amounts arrive as exact decimal strings; a person reads them grouped and rounded (from 1
// up: at most 2 decimals; below 1: 6 significant digits). The exact value stays in the cell's
// title.
function money(value) {
  if (value == null || value === "") return "—";
  const n = Number(value);
  if (typeof value !== "string" || !/^-?\d+(\.\d+)?$/.test(value) || !Number.isFinite(n)) return String(value);
  const options = Math.abs(n) >= 1 ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 6 };
  return n.toLocaleString("en-US", options);
}

function percent(value) {
  const n = Number(value);
  return value == null || value === "" || !Number.isFinite(n) ? "—" : `${n.toLocaleString("en-US", { maximumFractionDigits: 2 })} %`;
}

// A table cell showing `text`, with the exact value (when it differs) as its title.
function cell(text, exact) {
  return element("td", exact != null && String(exact) !== text ? { title: String(exact) } : {}, text);
}

async function refreshPrivate(symbols) {
  const panel = $("private");
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    panel.dataset.state = "need-token";
    $("private-message").textContent = "Enter the read token to see positions, cost basis and P&L.";
    $("private-data").replaceChildren();
    return;
  }
  const [positions, ...costs] = await Promise.all([get("/v1/positions", token), ...symbols.map((s) => get(`/v1/cost/${s}`, token))]);
  if (positions.status === 401 || positions.status === 403) {
    panel.dataset.state = "unauthorized";
    $("private-message").textContent = "Unauthorized: that token was refused. Enter the read token again.";
    $("private-data").replaceChildren();
    return;
  }
  if (positions.status !== 200) {
    panel.dataset.state = "error";
    $("private-message").textContent = positions.body?.error?.message ?? `positions answered ${positions.status}`;
    return;
  }
  panel.dataset.state = "ok";
  $("private-message").textContent = "";
  const positionRows = (positions.body.positions ?? []).map((p) =>
    element("tr", { "data-position": `${p.symbol}:${p.side}` },
      cell(p.symbol), cell(p.side), ...[p.base_free ?? p.qrl_balance, p.avg_cost].map((v) => cell(money(v), v)), cell(when(p.updated_at))));
  const costRows = costs.map((c, i) => c.status === 200
    ? element("tr", { "data-cost": symbols[i] },
      cell(symbols[i]),
      ...[c.body.qty, c.body.avg_cost, c.body.price, c.body.realized_pnl, c.body.total_pnl].map((v) => cell(money(v), v)),
      cell(percent(c.body.roi_pct), c.body.roi_pct))
    : element("tr", { "data-cost": symbols[i] }, element("td", {}, symbols[i]), element("td", { colspan: "6" }, "no cost record yet")));
  const table = (head, rows) => element("div", { class: "scroll" }, element("table", {},
    element("thead", {}, element("tr", {}, ...head.map((h) => element("th", {}, h)))), element("tbody", {}, ...rows)));
  $("private-data").replaceChildren(
    element("h3", {}, "Positions"), table(["symbol", "side", "quantity", "avg cost", "updated"], positionRows),
    element("h3", {}, "Cost basis and P&L"), table(["symbol", "qty", "avg cost", "price", "realized", "total P&L", "ROI"], costRows));
}

async function refresh() {
  const health = await get("/health");
  const symbols = health.body?.symbols ?? [];
  const results = await Promise.all(symbols.map(refreshSymbol));
  const stale = results.some((r) => r.stale);
  const { state, redisDown } = renderStore(health.status === 200 ? health.body : null, stale);
  renderTasks(health.body?.tasks);
  if (health.status !== 200) banner("down", "The worker did not answer; retrying.");
  else if (state === "stale" || redisDown) banner("stale", "Redis is down: showing the last synced data (stale) from the durable copy.");
  else if (!results.some((r) => r.synced)) banner("empty", "Nothing synced yet: the first cron run fills this page.");
  else banner("none", "");
  await refreshPrivate(symbols);
  refreshes += 1;
  document.body.dataset.refreshes = String(refreshes);
  document.body.dataset.ready = "1";
  $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  refresh();
});

const clamped = REFRESH_S !== ASKED_REFRESH_S;
$("refresh-every").textContent = clamped
  ? `refreshes every ${REFRESH_S} s (?refresh= is at least ${MIN_REFRESH_S} s${Number.isFinite(ASKED_REFRESH_S) ? "" : "; it was not a number"})`
  : `refreshes every ${REFRESH_S} s`;
$("refresh-every").dataset.clamped = String(clamped);
refresh();
setInterval(refresh, REFRESH_MS);
