// The kiosk: a clock and each punch confirmed, pushed by /kiosk/events (Server-Sent Events;
// read-only, no login). EventSource reconnects by itself and sends the last punch's seq
// (Last-Event-ID), so nothing is shown twice or skipped. When the stream is refused (503: too
// many open) the page polls /kiosk/feed for a while, then tries the stream again.
"use strict";
(function () {
  const POLL_MS = 400;
  const FALLBACK_MS = 30000; // how long to poll before trying the stream again
  const OFFLINE_AFTER_MS = 3000;
  const body = document.body;
  const en = body.dataset.lang === "en";
  const feedUrl = body.dataset.feed;
  const eventsUrl = body.dataset.events;
  const latest = document.getElementById("latest");
  const recent = document.getElementById("recent");
  const offline = document.getElementById("offline");
  let after = -1;
  let skew = 0; // server clock minus this screen's clock, ms
  let failures = 0;

  const words = en
    ? { in: "in", out: "out", late: (m) => `late ${m} min`, clock: (s) => `terminal clock off by ${s} s` }
    : { in: "上班", out: "下班", late: (m) => `迟到 ${m} 分钟`, clock: (s) => `考勤机时钟偏差 ${s} 秒` };

  // the plant's zone, whatever zone the screen's browser is set to
  const zone = body.dataset.tz;
  const clockFormat = new Intl.DateTimeFormat("en-GB",
    { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const dateFormat = new Intl.DateTimeFormat(en ? "en-GB" : "zh-CN",
    { timeZone: zone, year: "numeric", month: "long", day: "numeric", weekday: "long" });

  function tick() {
    const now = new Date(Date.now() + skew);
    document.getElementById("clock").textContent = clockFormat.format(now);
    document.getElementById("date").textContent = dateFormat.format(now);
  }

  function describe(p) {
    const warnings = [];
    if (p.late_min > 0) warnings.push(words.late(p.late_min));
    if (p.clock_off_s) warnings.push(words.clock(p.clock_off_s));
    const who = p.name || (en ? "unregistered badge" : "未登记人员");
    const dir = p.dir ? " " + words[p.dir] : "";
    return { text: `✓ ${who} ${p.time}${dir}`, warnings };
  }

  function show(p) {
    const d = describe(p);
    latest.className = d.warnings.length ? "warn" : "ok";
    latest.textContent = d.text;
    latest.dataset.seq = p.seq;
    if (d.warnings.length) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = "⚠ " + d.warnings.join("，");
      latest.appendChild(note);
    }
    const item = document.createElement("li");
    item.textContent = d.text + (d.warnings.length ? "  ⚠ " + d.warnings.join("，") : "");
    if (d.warnings.length) item.className = "warn";
    recent.insertBefore(item, recent.firstChild);
    while (recent.children.length > 8) recent.removeChild(recent.lastChild);
  }

  function fresh(p) {
    if (p.seq <= after) return; // already shown (a stream and a poll may overlap)
    after = p.seq;
    show(p);
  }

  // -- pushed: the normal way ------------------------------------------------------------
  let offlineTimer = null;
  function connect() {
    const source = new EventSource(after >= 0 ? `${eventsUrl}?after=${after}` : eventsUrl);
    offlineTimer = setTimeout(() => { offline.hidden = false; }, OFFLINE_AFTER_MS);
    source.onopen = () => {
      clearTimeout(offlineTimer);
      offlineTimer = null;
      offline.hidden = true;
      body.dataset.live = "sse";
    };
    source.addEventListener("hello", (e) => { skew = JSON.parse(e.data).now_ms - Date.now(); });
    source.addEventListener("punch", (e) => fresh(JSON.parse(e.data)));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) { // refused (503) or not a stream: poll for a while
        clearTimeout(offlineTimer);
        source.close();
        poll(Date.now() + FALLBACK_MS);
      } else if (!offlineTimer) { // the browser reconnects by itself
        offlineTimer = setTimeout(() => { offline.hidden = false; }, OFFLINE_AFTER_MS);
      }
    };
  }

  // -- polled: the fallback --------------------------------------------------------------
  async function poll(until) {
    body.dataset.live = "poll";
    try {
      const response = await fetch(`${feedUrl}?after=${after}`, { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      skew = data.now_ms - Date.now();
      data.punches.forEach(fresh);
      after = Math.max(after, data.last);
      failures = 0;
      offline.hidden = true;
    } catch (err) {
      failures += 1;
      if (failures >= 3) offline.hidden = false;
    }
    if (Date.now() < until) setTimeout(() => poll(until), POLL_MS);
    else connect();
  }

  tick();
  setInterval(tick, 250);
  if (window.EventSource) connect();
  else poll(Infinity);
})();
