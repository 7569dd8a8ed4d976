// The read-only dashboard of a keeper node: plain DOM over the admin listener's JSON views
// (/v1/network, /v1/jobs, /v1/jobs/{id}); no build step, no dependency.
"use strict";

const RUNNABLE = new Set(["due", "scheduled", "waiting_event", "waiting_confirmations", "condition_false"]);
const WAITING = new Set(["no_quorum", "not_mine", "priced_out"]);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function ether(wei) {
  if (wei === null || wei === undefined) return "–";
  const v = BigInt(wei);
  const unit = 10n ** 18n;
  const whole = v / unit;
  let frac = (v % unit).toString().padStart(18, "0").slice(0, 6).replace(/0+$/, "");
  if (frac === "" && v % unit !== 0n) frac = "000001";
  return `${whole}${frac ? "." + frac : ""} ETH`;
}

function when(ts) {
  if (ts === null || ts === undefined) return "–";
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function short(address) {
  return address ? `${address.slice(0, 8)}…${address.slice(-4)}` : "";
}

function stateBadge(state) {
  const kind = RUNNABLE.has(state) ? "ok" : WAITING.has(state) ? "wait" : "bad";
  return el("span", { class: `state ${kind}`, "data-state": state }, state.replace(/_/g, " "));
}

function jobName(job) {
  return `Job #${job.id} · ${job.kind}${job.trigger ? " · " + job.trigger : ""}`;
}

function nextRun(job) {
  if (job.next_run !== null && job.next_run !== undefined) return when(job.next_run);
  if (job.next_block !== null && job.next_block !== undefined) return `block ${job.next_block}`;
  return "–";
}

function runway(job) {
  if (job.runway_executions === null || job.runway_executions === undefined) return "–";
  let text = `${job.runway_executions} runs`;
  if (job.runway_seconds) text += ` (~${(job.runway_seconds / 3600).toFixed(1)} h)`;
  return text;
}

async function getJson(path) {
  const resp = await fetch(path, { cache: "no-store" });
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.reason || resp.statusText);
  return body;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function showNetwork() {
  const [net, jobs] = await Promise.all([getJson("/v1/network"), getJson("/v1/jobs")]);
  document.getElementById("node").textContent = `This node: ${net.address} · head block ${net.head}`;
  document.getElementById("epoch").textContent =
    `Epoch ${net.epoch}${net.epoch_start_block !== null ? " (from block " + net.epoch_start_block + ")" : ""} · ` +
    `${net.quorums.length} quorum(s) · ${net.keepers.length} keeper(s)`;
  fill(document.querySelector("#keepers tbody"), net.keepers.map((k) => {
    let load = "–";
    if (k.load && k.load.cpu_percent !== undefined) {
      load = `cpu ${k.load.cpu_percent.toFixed(0)}% · mem ${k.load.memory_percent.toFixed(0)}%${k.load.overloaded ? " · overloaded" : ""}`;
    } else if (k.load) {
      load = k.load.overloaded ? `overloaded (block ${k.load.seen_at_block})` : `normal (block ${k.load.seen_at_block})`;
    }
    return el("tr", {}, el("td", { title: k.address }, short(k.address) + (k.me ? " (this node)" : "")),
      el("td", {}, k.status), el("td", { class: "num" }, ether(k.stake)),
      el("td", { class: "num" }, k.active_jobs), el("td", {}, load));
  }));
  fill(document.querySelector("#quorums tbody"), net.quorums.map((q) => el("tr", {},
    el("td", {}, `#${q.index}`),
    el("td", {}, q.members.map((m) => short(m.address)).join(", ")),
    el("td", { class: "num" }, ether(q.members.reduce((s, m) => s + BigInt(m.stake), 0n).toString())),
    el("td", { class: "num" }, q.active_jobs))));
  fill(document.querySelector("#jobs tbody"), jobs.map((j) => el("tr", { "data-job": j.id },
    el("td", {}, el("a", { href: `job.html?id=${j.id}` }, jobName(j))),
    el("td", {}, stateBadge(j.state)),
    el("td", { class: "reason" }, j.reason),
    el("td", { class: "num" }, nextRun(j)),
    el("td", { class: "num" }, ether(j.balance)),
    el("td", { class: "num" }, runway(j)),
    el("td", { class: "num" }, `${j.executions}${j.failures ? " (" + j.failures + " failed)" : ""}`))));
}

function drawChart(container, history) {
  const width = 1000, height = 260, left = 80, right = 16, top = 12, bottom = 36;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const add = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
    return node;
  };
  const points = history.map((h, i) => ({
    x: h.time !== null ? h.time : i, y: Number(BigInt(h.payment)) / 1e18, ok: h.success, row: h,
  }));
  if (points.length === 0) {
    const t = add("text", { x: width / 2, y: height / 2, "text-anchor": "middle" });
    t.textContent = "no executions yet";
    container.replaceChildren(svg);
    return;
  }
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const y1 = Math.max(...ys) * 1.1 || 1;
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const sy = (y) => height - bottom - (y / y1) * (height - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    add("line", { class: "grid", x1: left, x2: width - right, y1: sy(y), y2: sy(y) });
    const label = add("text", { x: left - 6, y: sy(y) + 4, "text-anchor": "end" });
    label.textContent = y.toFixed(6);
  }
  add("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom });
  add("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom });
  for (const [x, anchor] of [[x0, "start"], [x1, "end"]]) {
    const label = add("text", { x: sx(x), y: height - bottom + 18, "text-anchor": anchor });
    label.textContent = history[0].time !== null ? when(x).slice(11) : `#${x}`;
  }
  const yLabel = add("text", { x: left + 8, y: top + 10 });
  yLabel.textContent = "ETH";
  add("polyline", { class: "line", points: points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ") });
  for (const p of points) {
    const title = document.createElementNS(SVG, "title");
    title.textContent = `round ${p.row.round}, block ${p.row.block}: ${ether(p.row.payment)}${p.ok ? "" : " (failed)"}`;
    if (p.ok) {
      add("circle", { class: "ok", cx: sx(p.x), cy: sy(p.y), r: 4 }).append(title);
    } else {
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "failure");
      for (const [dx, dy] of [[-5, -5], [-5, 5]]) {
        const line = document.createElementNS(SVG, "line");
        line.setAttribute("x1", sx(p.x) + dx); line.setAttribute("y1", sy(p.y) + dy);
        line.setAttribute("x2", sx(p.x) - dx); line.setAttribute("y2", sy(p.y) - dy);
        g.append(line);
      }
      g.append(title);
      svg.append(g);
    }
  }
  container.replaceChildren(svg);
}

async function showJob() {
  const id = new URLSearchParams(location.search).get("id");
  const job = await getJson(`/v1/jobs/${encodeURIComponent(id || "")}`);
  document.title = `Keeper job #${job.id}`;
  document.getElementById("title").textContent = jobName(job);
  document.getElementById("summary").textContent =
    `${job.status} on chain · owner ${short(job.owner)} · target ${short(job.target)} · round ${job.round} · quorum ${job.quorum ?? "–"}${job.mine ? " (this node's)" : ""}`;
  document.getElementById("state").replaceWith(Object.assign(stateBadge(job.state), { id: "state" }));
  document.getElementById("reason").textContent = job.reason;
  const money = [
    ["Balance", ether(job.balance)], ["Minimum balance", ether(job.min_balance)],
    ["Spent", ether(job.spent)], ["Average cost", ether(job.average_cost)],
    ["Runway", runway(job)], ["Next run", nextRun(job)],
    ["Executions", `${job.executions} (${job.failures} failed)`], ["Gas limit", job.gas_limit],
  ];
  document.getElementById("money").replaceChildren(...money.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  drawChart(document.getElementById("chart"), job.history);
  fill(document.querySelector("#reasons tbody"), job.reasons.slice().reverse().map((r) =>
    el("tr", {}, el("td", { class: "num" }, r.block), el("td", {}, stateBadge(r.state)), el("td", {}, r.reason))));
  fill(document.querySelector("#history tbody"), job.history.slice(-20).reverse().map((h) =>
    el("tr", {}, el("td", { class: "num" }, h.round), el("td", { class: "num" }, h.block),
      el("td", { class: "num" }, when(h.time)), el("td", {}, h.success ? "ok" : "failed"),
      el("td", { class: "num" }, h.gas_used), el("td", { class: "num" }, ether(h.payment)))));
}

async function refresh() {
  const page = document.body.dataset.page;
  try {
    await (page === "job" ? showJob() : showNetwork());
    document.body.dataset.loaded = "yes";
  } catch (err) {
    document.body.dataset.loaded = "error";
    const where = document.getElementById(page === "job" ? "summary" : "node");
    where.textContent = `Cannot read the node: ${err.message}`;
  }
}

refresh();
setInterval(refresh, 5000);
