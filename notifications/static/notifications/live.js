// The live bell: one websocket per page, the unread count on the bell, a toast for each
// new notification, and a DOM event ("gs:notifications") that the notifications page uses
// to show new items at the top. Reconnects with backoff after the server restarts.
(function () {
  "use strict";
  var bell = document.getElementById("notification-bell");
  if (!bell || !window.WebSocket) return;
  var countEl = bell.querySelector(".bell-count");
  var delay = 500;

  function setCount(n) {
    bell.dataset.unreadCount = String(n);
    bell.setAttribute("aria-label", "Notifications, " + n + " unread");
    countEl.textContent = n > 99 ? "99+" : String(n);
    countEl.hidden = n === 0;
  }
  window.gsSetUnreadCount = setCount;

  function toast(text) {
    var box = document.getElementById("toasts");
    var el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    el.textContent = text;  // text, never HTML: names are typed by users
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 5000);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/notifications/");
    socket.onopen = function () { delay = 500; };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (typeof data.unread_count === "number") setCount(data.unread_count);
      if (data.type === "notifications" && data.items) {
        data.items.slice(0, 3).forEach(function (item) { toast(item.text); });
        document.dispatchEvent(new CustomEvent("gs:notifications", { detail: data }));
      }
    };
    socket.onclose = function (event) {
      if (event.code === 4401) return;  // not logged in: nothing to wait for
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
