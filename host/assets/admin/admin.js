// modhost admin page: refreshes the current view every 2 s while the tab
// is visible (GET /admin/<view>?fragment=1, same cookie). Buttons are
// plain forms and work without this script. Served from the host binary
// (host/assets/admin/); no third-party code.
"use strict";

(function () {
  const main = document.getElementById("view");
  const view = main && main.dataset.view;
  if (!view) return;
  const url = "/admin/" + encodeURIComponent(view) + "?fragment=1";
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) {
        window.location.assign("/admin/login");
        return;
      }
      if (response.ok) {
        const html = await response.text();
        if (html !== main.innerHTML) {
          const x = window.scrollX;
          const y = window.scrollY;
          main.innerHTML = html;
          window.scrollTo(x, y);
        }
        main.dataset.refreshed = String(Date.now());
      }
    } catch (e) {
      // The host is restarting or unreachable: the next tick tries again.
    } finally {
      busy = false;
    }
  }

  window.setInterval(refresh, 2000);
})();
