// The live page: local times (UTC on hover), ticking durations, and new records as the server sends them.
// Server-sent events: the browser reconnects by itself and sends Last-Event-ID (the last record's seq), so
// the server resends only what this page has not seen. Every HTML fragment comes from the server's
// autoescaping templates; this script never builds markup from run data.
"use strict";
(function () {
  const body = document.body;
  window.addEventListener("error", function () { body.dataset.jsError = "1"; });

  function pad(n) { return String(n).padStart(2, "0"); }

  function duration(seconds) {  // as engine.report_model.fmt_seconds says it
    if (!(seconds >= 0)) { return "…"; }
    if (seconds < 60) { return seconds < 10 ? seconds.toFixed(2) + " s" : seconds.toFixed(1) + " s"; }
    const whole = Math.round(seconds), minutes = Math.floor(whole / 60);
    if (minutes < 60) { return minutes + " min " + pad(whole % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + pad(minutes % 60) + " min";
  }

  function localise(root) {
    for (const t of root.querySelectorAll("time[datetime]")) {
      const when = new Date(t.getAttribute("datetime"));
      if (isNaN(when.getTime())) { continue; }
      t.textContent = when.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
      t.title = when.toISOString().replace(/\.\d+Z$/, "Z").replace("T", " ") + " UTC";
    }
  }

  let skew = 0;  // server clock minus ours, so a running step ticks from the server's start time
  function tick() {
    for (const el of document.querySelectorAll("[data-since]")) {
      const since = Date.parse(el.dataset.since);
      if (!isNaN(since)) { el.textContent = duration((Date.now() + skew - since) / 1000); }
    }
  }

  localise(document);
  tick();
  window.setInterval(tick, 1000);
  if (body.dataset.page !== "run") { return; }

  const records = document.getElementById("records");
  const panels = document.getElementById("panels");
  const conn = document.getElementById("conn");
  const template = document.createElement("template");
  let lastSeq = Number(body.dataset.seq) || 0;

  const source = new EventSource(body.dataset.events + "?after=" + lastSeq);
  source.addEventListener("open", function () { conn.textContent = "live"; conn.className = "conn live"; });
  source.addEventListener("error", function () { conn.textContent = "reconnecting…"; conn.className = "conn down"; });
  source.addEventListener("record", function (event) {
    const seq = Number(event.lastEventId);
    if (!(seq > lastSeq)) { return; }
    template.innerHTML = JSON.parse(event.data).html;
    const row = template.content.firstElementChild;
    if (!row) { return; }
    localise(row);
    records.append(row);
    lastSeq = seq;
    body.dataset.seq = String(seq);
  });
  source.addEventListener("state", function (event) {
    const state = JSON.parse(event.data);
    skew = Date.parse(state.now) - Date.now() || 0;
    // What the reader opened stays open: the panels are redrawn on every record.
    const open = new Set(Array.from(panels.querySelectorAll("details[open][data-keep]"), function (d) {
      return d.dataset.keep;
    }));
    panels.innerHTML = state.html;
    for (const d of panels.querySelectorAll("details[data-keep]")) {
      if (open.has(d.dataset.keep)) { d.open = true; }
    }
    localise(panels);
    tick();
    body.dataset.status = state.status;
  });
})();
