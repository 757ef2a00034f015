// The kiosk: a clock and each punch confirmed, by polling /kiosk/feed (read-only, no login).
"use strict";
(function () {
  const POLL_MS = 400;
  const body = document.body;
  const en = body.dataset.lang === "en";
  const feedUrl = body.dataset.feed;
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

  async function poll() {
    try {
      const response = await fetch(`${feedUrl}?after=${after}`, { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      skew = data.now_ms - Date.now();
      data.punches.forEach(show);
      after = data.last;
      failures = 0;
      offline.hidden = true;
    } catch (err) {
      failures += 1;
      if (failures >= 3) offline.hidden = false;
    }
    setTimeout(poll, POLL_MS);
  }

  tick();
  setInterval(tick, 250);
  poll();
})();
