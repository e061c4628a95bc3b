// modhost admin page: keeps the current view live. The host sends the
// view's HTML over a websocket (/admin/feed?view=<view>, same cookie)
// whenever it changes; where the socket cannot be opened, the view is
// fetched every 2 s (GET /admin/<view>?fragment=1) instead. Buttons are
// plain forms and work without this script. Served from the host binary
// (host/assets/admin/); no third-party code.
"use strict";

(function () {
  const main = document.getElementById("view");
  const view = main && main.dataset.view;
  if (!view) return;
  const name = encodeURIComponent(view);

  function apply(html, how) {
    if (html !== main.innerHTML) {
      const x = window.scrollX;
      const y = window.scrollY;
      main.innerHTML = html;
      window.scrollTo(x, y);
    }
    main.dataset.live = how;
  }

  let busy = false;
  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch("/admin/" + name + "?fragment=1", {
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) {
        window.location.assign("/admin/login");
        return;
      }
      if (response.ok) apply(await response.text(), "poll");
    } catch (e) {
      // The host is restarting or unreachable: the next tick tries again.
    } finally {
      busy = false;
    }
  }

  let polling = false;
  function startPolling() {
    if (polling) return;
    polling = true;
    window.setInterval(poll, 2000);
  }

  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = scheme + "//" + window.location.host + "/admin/feed?view=" + name;
  let socket;
  try {
    socket = new WebSocket(url);
  } catch (e) {
    startPolling();
    return;
  }
  socket.onmessage = (event) => apply(event.data, "ws");
  socket.onclose = (event) => {
    // 4003: the page session ended (logout, a rotated token).
    if (event.code === 4003) window.location.assign("/admin/login");
    else startPolling();
  };
})();
