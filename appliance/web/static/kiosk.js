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
    ? { in: "in", out: "out", late: (m) => `late ${m} min`, clock: (s) => `terminal clock off by ${s} s`,
        unknown: "Not registered: please see HR", again: "already recorded: one press is enough" }
    : { in: "上班", out: "下班", late: (m) => `迟到 ${m} 分钟`, clock: (s) => `考勤机时钟偏差 ${s} 秒`,
        unknown: "未登记，请联系人事", again: "已记录，按一次即可" };
  const ROWS = 14; // lines kept; the screen shows as many as fit (more on a 1080p TV)
  const terminalBanner = document.getElementById("terminal-offline");
  const served = body.dataset.terminal; // a screen beside one terminal: only its state

  function terminals(offline) {
    const down = served ? offline.filter((name) => name === served) : offline;
    terminalBanner.hidden = down.length === 0;
    body.dataset.offline = down.join(",");
  }

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
    const dir = p.dir ? " " + words[p.dir] : "";
    if (p.known === false) { // a badge the roster does not know: no ✓, say what to do
      return { text: `✗ ${words.unknown} ${p.time}`, warnings, kind: "unknown" };
    }
    return { text: `✓ ${p.name} ${p.time}${dir}`, warnings, kind: warnings.length ? "warn" : "ok" };
  }

  function show(p) {
    const d = describe(p);
    const notes = d.warnings.slice();
    // the same badge again within the minute: the line it made already says it, once
    const twin = p.repeat ? Array.from(recent.children).find((li) => li.dataset.who === (p.name || "?")) : null;
    if (twin) notes.push(words.again);
    latest.className = d.kind;
    latest.textContent = d.text;
    latest.dataset.seq = p.seq;
    if (notes.length) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = (d.warnings.length ? "⚠ " : "") + notes.join("，");
      latest.appendChild(note);
    }
    if (twin) {
      twin.dataset.presses = String(Number(twin.dataset.presses || "1") + 1);
      recent.insertBefore(twin, recent.firstChild);
      return;
    }
    const item = document.createElement("li");
    item.textContent = d.text + (d.warnings.length ? "  ⚠ " + d.warnings.join("，") : "");
    item.className = d.kind === "ok" ? "" : d.kind;
    item.dataset.who = p.name || "?";
    item.dataset.seq = p.seq;
    recent.insertBefore(item, recent.firstChild);
    while (recent.children.length > ROWS) recent.removeChild(recent.lastChild);
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
    source.addEventListener("terminals", (e) => terminals(JSON.parse(e.data).offline));
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
      terminals(data.offline || []);
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
