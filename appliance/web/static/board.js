// The live board: /board/events pushes the board's version (Server-Sent Events); when it moves,
// fetch the fresh rows (?partial=1, with this page's filters) and swap them in. At most one fetch
// at a time, one every MIN_GAP_MS (a shift change moves the version with every punch), and never
// sooner after one than it took to answer (a busy Pi is asked less often). The rows
// say which version they show (data-shown-version: the status part is rendered at most once a
// second); when it is older than the one announced, the page fetches again MIN_GAP_MS later.
// EventSource reconnects by itself; when the stream is refused (503, or the session expired and
// the stream was redirected to the login page) the page polls /board/version instead.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const POLL_MS = 3000;
  const MIN_GAP_MS = 1000;
  const FALLBACK_MS = 60000;
  let wanted = live.dataset.version;
  let busy = false;
  let lastFetch = 0;
  let lastEnd = 0;
  let lastTook = 0;

  async function refresh() {
    if (busy || wanted === live.dataset.version) return;
    // and as long after the last fetch as it took: a Pi serving a room of boards at a shift change answers
    // slower, and its boards then ask less often, leaving it time for the kiosk and the other pages
    const wait = Math.max(lastFetch + MIN_GAP_MS, lastEnd + lastTook) - Date.now();
    if (wait > 0) { setTimeout(refresh, wait); return; }
    busy = true;
    lastFetch = Date.now();
    const version = wanted;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      const page = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (page.redirected) { window.location.reload(); return; } // the session expired: log in again
      if (page.ok) {
        live.innerHTML = await page.text();
        const shown = live.querySelector("[data-shown-version]");
        live.dataset.version = shown ? shown.dataset.shownVersion : version;
        live.dataset.refreshed = String(Date.now());
      }
    } catch (err) {
      // the appliance restarting: the next event or poll tries again
    } finally {
      busy = false;
      lastEnd = Date.now();
      lastTook = lastEnd - lastFetch;
    }
    if (wanted !== live.dataset.version) setTimeout(refresh, MIN_GAP_MS);
  }

  function connect() {
    const source = new EventSource(live.dataset.eventsUrl);
    source.onopen = () => { live.dataset.live = "sse"; };
    source.addEventListener("version", (e) => {
      wanted = JSON.parse(e.data).version;
      refresh();
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        poll(Date.now() + FALLBACK_MS);
      }
    };
  }

  async function poll(until) {
    live.dataset.live = "poll";
    try {
      const response = await fetch(live.dataset.versionUrl, { cache: "no-store", credentials: "same-origin" });
      if (response.redirected) { window.location.reload(); return; }
      if (response.ok) {
        wanted = (await response.json()).version;
        refresh();
      }
    } catch (err) {
      // the appliance restarting: try again at the next tick
    }
    if (Date.now() < until) setTimeout(() => poll(until), POLL_MS);
    else connect();
  }

  if (window.EventSource) connect();
  else poll(Infinity);
})();
