// corequeue dashboard: refresh the overview's live part every few seconds. No other script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(Number(live.dataset.every) || 5, 1) * 1000;
  const updated = document.querySelector("[data-updated]");

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(live.dataset.live, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected) {
        window.location.reload(); // signed out meanwhile: let the page ask for credentials
        return;
      }
      if (!response.ok) return;
      // The server renders this HTML with every value escaped, as it does the whole page.
      live.innerHTML = await response.text();
      live.dataset.refreshed = String(Number(live.dataset.refreshed || 0) + 1);
      if (updated) updated.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    } catch (error) {
      if (updated) updated.textContent = "not updated: " + error;
    }
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
