/* pylvsd dashboard: polls the JSON API every 2 s and draws a virtualised list.
 *
 * One timer for the page (the poll); the list only creates the rows on screen
 * (fixed row height), so 500 services with thousands of real servers stay cheap.
 * Rate history for the sparklines lives here, keyed by service/real server.
 */
"use strict";
(function () {
  const POLL_MS = 2000;
  const HISTORY = 90; // points: 3 minutes at 2 s
  const OVERSCAN = 8;
  const AUTO_EXPAND = 20; // at most this many services: all expanded at first

  const $ = (id) => document.getElementById(id);
  const viewport = $("viewport"), rowsEl = $("rows"), spacer = $("spacer");
  const rowH = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--row")) || 26;

  const state = {
    services: [], health: new Map(), vrrp: [], stats: null, info: null,
    expanded: new Set(), collapsed: new Set(), autoExpand: null,
    gone: new Map(), // service id -> health entries of real servers not in the table
    rows: [], lastSeq: 0, history: new Map(), filter: "", problems: false,
  };

  // -- formatting -------------------------------------------------------------------
  function si(n, unit) {
    if (n === undefined || n === null) return "–";
    const a = Math.abs(n);
    const units = ["", "k", "M", "G", "T", "P"];
    let i = 0, v = a;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    const s = i === 0 ? String(Math.round(n)) : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + units[i];
    return (n < 0 && i ? "-" : "") + s + (unit || "");
  }
  const bytes = (n) => si(n, "B");
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  const hp = (a, p) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
  function sid(s) {
    if (s.fwmark) return (s.family === "inet6" ? "fwmark6:" : "fwmark:") + s.fwmark;
    return `${s.protocol}:${s.address.includes(":") ? "[" + s.address + "]" : s.address}:${s.port}`;
  }
  function svcName(s) {
    if (s.fwmark) return `FWM ${s.fwmark}${s.family === "inet6" ? " IPv6" : ""}`;
    return `${s.protocol.toUpperCase()} ${hp(s.address, s.port)}`;
  }
  function svcSched(s) {
    let t = s.sched_name;
    if (s.persistent) t += ` persistent ${s.timeout}`;
    if (s.ops) t += " ops";
    if (s.sched_flags.length) t += " " + s.sched_flags.join(",");
    return t;
  }
  const destKey = (id, a, p) => `${id}|${a}|${p}`;

  // -- history ------------------------------------------------------------------------
  function remember(key, rates, seen) {
    let h = state.history.get(key);
    if (!h) { h = { cps: [], bps: [] }; state.history.set(key, h); }
    h.cps.push(rates.cps);
    h.bps.push(rates.inbps + rates.outbps);
    if (h.cps.length > HISTORY) { h.cps.shift(); h.bps.shift(); }
    seen.add(key);
  }

  function spark(canvas, series, colors) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    series.forEach((pts, i) => {
      if (!pts || pts.length < 2) return;
      const max = Math.max(1, ...pts);
      ctx.beginPath();
      pts.forEach((v, j) => {
        const x = (j / (HISTORY - 1)) * w + (HISTORY - pts.length) / (HISTORY - 1) * w;
        const y = h - 1 - (v / max) * (h - 3);
        if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.strokeStyle = colors[i];
      ctx.lineWidth = 1.25;
      ctx.stroke();
    });
  }
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // -- the rows -------------------------------------------------------------------------
  function healthOf(id, d) {
    return state.health.get(destKey(id, d.address, d.port));
  }
  function problem(s) {
    const id = sid(s);
    if (!s.dests.length) return true;
    for (const d of s.dests) {
      const h = healthOf(id, d);
      if ((h && !h.up) || !d.available || d.overloaded || d.weight === 0) return true;
    }
    return state.gone.has(id);
  }
  function matches(s, f) {
    if (!f) return true;
    const text = [svcName(s), s.sched_name, sid(s)]
      .concat(s.dests.map((d) => `${hp(d.address, d.port)} ${d.fwd_method}`)).join(" ").toLowerCase();
    return f.split(/\s+/).every((w) => text.includes(w));
  }
  function isExpanded(id) {
    if (state.expanded.has(id)) return true;
    if (state.collapsed.has(id)) return false;
    return state.autoExpand;
  }

  function buildRows() {
    const rows = [];
    const f = state.filter.trim().toLowerCase();
    let shown = 0;
    for (const s of state.services) {
      if (state.problems && !problem(s)) continue;
      if (!matches(s, f)) continue;
      shown++;
      const id = sid(s);
      rows.push({ kind: "svc", s, id });
      if (!isExpanded(id)) continue;
      for (const d of s.dests) rows.push({ kind: "dest", s, id, d });
      for (const h of state.gone.get(id) || []) rows.push({ kind: "gone", s, id, h });
    }
    state.rows = rows;
    spacer.style.height = rows.length * rowH + "px";
    $("count").textContent = `${shown} of ${state.services.length} services`;
    $("empty").hidden = state.services.length > 0;
  }

  function healthCell(h, d) {
    if (h) {
      const since = h.since ? ` since ${new Date(h.since * 1000).toLocaleTimeString()}` : "";
      return `<span class="health ${h.up ? "up" : "down"}" title="health checks${esc(since)}">${h.up ? "up" : "down"}</span>`;
    }
    if (d && (!d.available || d.overloaded)) return `<span class="health warn">${d.overloaded ? "overloaded" : "unavailable"}</span>`;
    return `<span class="health" title="not health checked">–</span>`;
  }

  function rowHtml(r) {
    if (r.kind === "svc") {
      const s = r.s, id = r.id;
      let up = 0, act = 0, inact = 0, weight = 0;
      for (const d of s.dests) {
        const h = healthOf(id, d);
        if ((!h || h.up) && d.weight > 0 && d.available) up++;
        act += d.activeconns; inact += d.inactconns; weight += d.weight;
      }
      const total = s.dests.length + (state.gone.get(id) || []).length;
      const cls = total === 0 || up === 0 ? "down" : up < total ? "warn" : "up";
      const label = total === 0 ? "no server" : `${up}/${total} up`;
      // up: in service (health checks pass or none, available, weight above 0)
      return `<div class="row svc" data-key="${esc(id)}" role="button" aria-expanded="${isExpanded(id)}">` +
        `<span class="c-name" title="${esc(id)}"><span class="caret">${isExpanded(id) ? "▾" : "▸"}</span>${esc(svcName(s))}</span>` +
        `<span class="c-method" title="${esc(svcSched(s))}">${esc(svcSched(s))}</span>` +
        `<span class="c-weight num" title="total weight">${weight}</span>` +
        `<span class="c-health"><span class="health ${cls}">${label}</span></span>` +
        `<span class="c-active num">${act}</span><span class="c-inact num">${inact}</span>` +
        `<span class="c-conns num" title="${s.stats.conns}">${si(s.stats.conns)}</span>` +
        `<span class="c-cps num">${si(s.rates.cps)}</span>` +
        `<span class="c-inbps num" title="${s.rates.inbps} B/s">${bytes(s.rates.inbps)}</span>` +
        `<span class="c-outbps num" title="${s.rates.outbps} B/s">${bytes(s.rates.outbps)}</span>` +
        `<span class="c-spark"><canvas class="spark" data-hist="${esc(id)}"></canvas></span></div>`;
    }
    if (r.kind === "gone") {
      const h = r.h;
      return `<div class="row dest gone" data-key="${esc(destKey(r.id, h.address, h.port))}">` +
        `<span class="c-name">${esc(hp(h.address, h.port))}</span><span class="c-method">removed</span>` +
        `<span class="c-weight num">${h.weight}</span><span class="c-health">${healthCell(h, null)}</span>` +
        `<span></span><span></span><span></span><span></span><span></span><span></span><span></span></div>`;
    }
    const d = r.d, k = destKey(r.id, d.address, d.port);
    return `<div class="row dest" data-key="${esc(k)}">` +
      `<span class="c-name">${esc(hp(d.address, d.port))}</span>` +
      `<span class="c-method">${esc(d.fwd_method)}${d.proxy_protocol ? " +pp" + esc(d.proxy_protocol) : ""}</span>` +
      `<span class="c-weight num">${d.weight}</span>` +
      `<span class="c-health">${healthCell(healthOf(r.id, d), d)}</span>` +
      `<span class="c-active num">${d.activeconns}</span><span class="c-inact num">${d.inactconns}</span>` +
      `<span class="c-conns num" title="${d.stats.conns}">${si(d.stats.conns)}</span>` +
      `<span class="c-cps num">${si(d.rates.cps)}</span>` +
      `<span class="c-inbps num" title="${d.rates.inbps} B/s">${bytes(d.rates.inbps)}</span>` +
      `<span class="c-outbps num" title="${d.rates.outbps} B/s">${bytes(d.rates.outbps)}</span>` +
      `<span class="c-spark"><canvas class="spark" data-hist="${esc(k)}"></canvas></span></div>`;
  }

  let scheduled = false;
  function render() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const top = viewport.scrollTop, height = viewport.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
      const last = Math.min(state.rows.length, Math.ceil((top + height) / rowH) + OVERSCAN);
      let html = "";
      for (let i = first; i < last; i++) html += rowHtml(state.rows[i]);
      rowsEl.style.transform = `translateY(${first * rowH}px)`;
      rowsEl.innerHTML = html;
      const c1 = css("--accent"), c2 = css("--accent2");
      for (const c of rowsEl.querySelectorAll("canvas[data-hist]")) {
        const h = state.history.get(c.dataset.hist);
        if (h) spark(c, [h.bps, h.cps], [c2, c1]);
      }
    });
  }

  // -- header, totals, events --------------------------------------------------------------
  function renderTotals() {
    const st = state.stats;
    if (st) {
      $("tot-cps").textContent = si(st.rates.cps);
      $("tot-inbps").textContent = bytes(st.rates.inbps) + "/s";
      $("tot-outbps").textContent = bytes(st.rates.outbps) + "/s";
      $("tot-pps").textContent = `${si(st.rates.inpps)} / ${si(st.rates.outpps)}`;
      $("tot-conns").textContent = String(st.stats.conns);
      $("tot-services").textContent = String(st.services);
      const h = state.history.get("total");
      if (h) {
        spark($("spark-cps"), [h.cps], [css("--accent")]);
        spark($("spark-in"), [h.inb], [css("--accent2")]);
        spark($("spark-out"), [h.outb], [css("--accent2")]);
      }
    }
    let act = 0, inact = 0, up = 0, all = 0;
    for (const s of state.services) {
      const id = sid(s);
      for (const d of s.dests) {
        act += d.activeconns; inact += d.inactconns; all++;
        const h = healthOf(id, d);
        if ((!h || h.up) && d.available && d.weight > 0) up++;
      }
    }
    for (const g of state.gone.values()) all += g.length;
    $("tot-active").textContent = `${act} / ${inact}`;
    $("tot-servers").textContent = `${up} / ${all}`;
    const v = $("vrrp");
    v.innerHTML = state.vrrp.map((i) => `<span class="badge ${esc(String(i.state).toUpperCase())}" title="${esc(i.interface || "")} vrid ${esc(i.vrid ?? "")} priority ${esc(i.effective_priority ?? i.priority ?? "")}">${esc(i.name)}: ${esc(i.state)}</span>`).join("");
  }

  function renderEvents(fresh) {
    if (!fresh.length) return;
    const ol = $("events");
    const html = fresh.slice().reverse().map((e) => {
      const bad = /_down$|_failed$|fault/i.test(e.kind) || /FAULT|BACKUP/.test(e.fields.state || "");
      const cls = e.level + (bad ? " error" : e.kind.endsWith("_up") || e.kind === "reload" ? " up" : "");
      return `<li class="${esc(cls)}" data-seq="${e.seq}"><time>${new Date(e.time * 1000).toLocaleTimeString()}</time>` +
        `<span class="kind">${esc(e.kind)}</span>${esc(e.message)}</li>`;
    }).join("");
    ol.insertAdjacentHTML("afterbegin", html);
    while (ol.children.length > 200) ol.lastElementChild.remove();
  }

  // -- polling ---------------------------------------------------------------------------
  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  async function poll() {
    const status = $("status");
    try {
      if (!state.info) {
        state.info = await getJSON("/v1/info");
        $("info").textContent = `${state.info.version} · ${state.info.dataplane} data plane · pid ${state.info.pid}`;
        document.title = `pylvsd · ${location.host || "local"}`;
      }
      const [services, stats, health, vrrp, events] = await Promise.all([
        getJSON("/v1/services"), getJSON("/v1/stats"), getJSON("/v1/health"),
        getJSON("/v1/vrrp"), getJSON(`/v1/events?since=${state.lastSeq}`),
      ]);
      state.services = services;
      state.stats = stats;
      state.vrrp = vrrp;
      state.health = new Map(health.map((h) => [destKey(h.service, h.address, h.port), h]));
      if (state.autoExpand === null) state.autoExpand = services.length <= AUTO_EXPAND;
      const seen = new Set();
      for (const s of services) {
        const id = sid(s);
        remember(id, s.rates, seen);
        for (const d of s.dests) remember(destKey(id, d.address, d.port), d.rates, seen);
      }
      state.gone = new Map();
      for (const [k, h] of state.health) {
        if (seen.has(k)) continue; // in the table
        if (!state.gone.has(h.service)) state.gone.set(h.service, []);
        state.gone.get(h.service).push(h);
      }
      let t = state.history.get("total");
      if (!t) { t = { cps: [], inb: [], outb: [] }; state.history.set("total", t); }
      t.cps.push(stats.rates.cps); t.inb.push(stats.rates.inbps); t.outb.push(stats.rates.outbps);
      if (t.cps.length > HISTORY) { t.cps.shift(); t.inb.shift(); t.outb.shift(); }
      seen.add("total");
      for (const k of state.history.keys()) if (!seen.has(k)) state.history.delete(k);
      if (events.length) state.lastSeq = events[events.length - 1].seq;
      renderEvents(events);
      buildRows();
      renderTotals();
      render();
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      status.classList.remove("error");
    } catch (e) {
      status.textContent = `no answer from pylvsd (${e.message}); retrying`;
      status.classList.add("error");
    }
    setTimeout(poll, POLL_MS);
  }

  // -- interaction -------------------------------------------------------------------------
  viewport.addEventListener("scroll", render, { passive: true });
  window.addEventListener("resize", render);
  rowsEl.addEventListener("click", (ev) => {
    const row = ev.target.closest(".row.svc");
    if (!row) return;
    const id = row.dataset.key;
    if (isExpanded(id)) { state.expanded.delete(id); state.collapsed.add(id); }
    else { state.collapsed.delete(id); state.expanded.add(id); }
    buildRows(); render();
  });
  $("filter").addEventListener("input", (ev) => { state.filter = ev.target.value; buildRows(); render(); });
  $("problems").addEventListener("change", (ev) => { state.problems = ev.target.checked; buildRows(); render(); });
  $("expand").addEventListener("click", () => { state.collapsed.clear(); state.expanded.clear(); state.autoExpand = true; buildRows(); render(); });
  $("collapse").addEventListener("click", () => { state.collapsed.clear(); state.expanded.clear(); state.autoExpand = false; buildRows(); render(); });

  poll();
})();
