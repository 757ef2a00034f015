// Keeps the board live: asks for the version every few seconds, swaps in fresh rows when it moved.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const EVERY_MS = 3000;
  async function check() {
    try {
      const response = await fetch(live.dataset.versionUrl, { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        const { version } = await response.json();
        if (version !== live.dataset.version) {
          const url = new URL(window.location.href);
          url.searchParams.set("partial", "1");
          const page = await fetch(url, { cache: "no-store", credentials: "same-origin" });
          if (page.redirected) { window.location.reload(); return; }  // the session expired: log in again
          if (page.ok) {
            live.innerHTML = await page.text();
            live.dataset.version = version;
          }
        }
      }
    } catch (err) {
      // the appliance restarting: try again at the next tick
    }
    setTimeout(check, EVERY_MS);
  }
  setTimeout(check, EVERY_MS);
})();
