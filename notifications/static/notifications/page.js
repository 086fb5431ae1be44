// The notifications page: renders clusters from the API (as text, never HTML), expands
// them in place, marks read (one, a cluster, everything shown), loads more by cursor, and
// puts new notifications at the top while the page is open.
(function () {
  "use strict";
  var initial = JSON.parse(document.getElementById("notifications-initial").textContent);
  var filters = initial.filters;
  var list = document.getElementById("clusters");
  var more = document.getElementById("load-more");
  var empty = document.getElementById("empty");
  var nextCursor = initial.next_cursor;
  var API = "/api/v1/notifications/";

  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function call(method, url, body, keepalive) {
    var options = { method: method, credentials: "same-origin", keepalive: !!keepalive,
                    headers: { "Accept": "application/json", "X-CSRFToken": csrf() } };
    if (body) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    return fetch(url, options).then(function (r) {
      return r.json().then(function (data) { if (!r.ok) throw new Error(data.error_message || r.status); return data; });
    });
  }
  function query(extra) {
    var params = new URLSearchParams(filters);
    Object.keys(extra || {}).forEach(function (k) { if (extra[k] != null) params.set(k, extra[k]); });
    var since = new URLSearchParams(location.search);
    ["since", "until"].forEach(function (k) { if (since.get(k)) params.set(k, since.get(k)); });
    return params.toString();
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function when(iso) {
    var t = el("time", null, new Date(iso).toLocaleString());
    t.dateTime = iso;
    return t;
  }
  function counted(data) { if (window.gsSetUnreadCount) window.gsSetUnreadCount(data.unread_count); }

  // Opening a notification reads it. The link itself only opens (a GET changes nothing: mail
  // scanners and prefetchers follow links too); the click marks it read with a POST first. A
  // click that opens another tab lets the link go at once, and the POST (keepalive) goes on.
  function opens(link, item) {
    if (item.is_read) return;
    function mark() { return call("POST", API + item.topic + "/" + item.pk + "/read", null, true); }
    link.addEventListener("click", function (event) {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) { mark(); return; }
      event.preventDefault();
      mark().catch(function () {}).then(function () { location.assign(link.href); });
    });
    link.addEventListener("auxclick", function (event) { if (event.button === 1) mark(); });
  }

  function itemRow(item, li) {
    var row = el("li", "item" + (item.is_read ? "" : " unread"));
    row.dataset.itemId = item.id;
    var link = el("a", null, item.text);
    link.href = item.url;
    opens(link, item);
    row.appendChild(link);
    row.appendChild(when(item.created_at));
    if (!item.is_read) {
      var b = el("button", "secondary", "Mark read");
      b.type = "button";
      b.addEventListener("click", function () {
        call("POST", API + item.topic + "/" + item.pk + "/read").then(function (data) {
          row.classList.remove("unread"); b.remove(); counted(data); refreshCluster(li);
        });
      });
      row.appendChild(b);
    }
    return row;
  }

  function clusterRow(c) {
    var li = el("li", "cluster" + (c.is_read ? "" : " unread"));
    li.dataset.clusterId = c.id;
    var line = el("div", "line");
    var text;
    if (c.size === 1 && c.items.length) { text = el("a", "text", c.text); text.href = c.items[0].url; opens(text, c.items[0]); }
    else { text = el("span", "text", c.text); }
    line.appendChild(text);
    if (c.preview) line.appendChild(el("span", "preview", c.preview));
    line.appendChild(when(c.last_at));
    li.appendChild(line);
    var actions = el("div", "actions");
    if (c.size > 1) {
      var expand = el("button", "secondary expand", "Show all " + c.size);
      expand.type = "button";
      expand.setAttribute("aria-expanded", "false");
      expand.addEventListener("click", function () { toggle(li, c, expand); });
      actions.appendChild(expand);
    }
    if (!c.is_read) {
      var mark = el("button", "secondary mark", c.size > 1 ? "Mark cluster read" : "Mark read");
      mark.type = "button";
      mark.addEventListener("click", function () {
        call("POST", API + "clusters/" + c.id + "/read").then(function (data) {
          counted(data); refreshCluster(li);
        });
      });
      actions.appendChild(mark);
    }
    li.appendChild(actions);
    var items = el("ul", "items");
    items.hidden = true;
    li.appendChild(items);
    return li;
  }

  function toggle(li, c, button) {
    var items = li.querySelector(".items");
    if (!items.hidden) { items.hidden = true; button.setAttribute("aria-expanded", "false"); button.textContent = "Show all " + c.size; return; }
    call("GET", API + "clusters/" + c.id + "?limit=100").then(function (data) {
      items.textContent = "";
      data.items.forEach(function (item) { items.appendChild(itemRow(item, li)); });
      items.hidden = false;
      button.setAttribute("aria-expanded", "true");
      button.textContent = "Hide";
    });
  }

  function refreshCluster(li) {
    var id = li.dataset.clusterId;
    var wasOpen = !li.querySelector(".items").hidden;
    call("GET", API + "clusters/" + id + "?limit=100").then(function (data) {
      var fresh = clusterRow(data.cluster);
      li.replaceWith(fresh);
      if (wasOpen) { var b = fresh.querySelector(".expand"); if (b) b.click(); }
    });
  }

  function render(clusters, atTop) {
    clusters.forEach(function (c) {
      var old = list.querySelector('[data-cluster-id="' + c.id + '"]');
      if (old) old.remove();
    });
    var anchor = list.firstChild;
    clusters.forEach(function (c) {
      var row = clusterRow(c);
      if (atTop) { row.classList.add("fresh"); list.insertBefore(row, anchor); }
      else list.appendChild(row);
    });
    empty.hidden = list.children.length > 0;
  }
  function setCursor(cursor) { nextCursor = cursor; more.hidden = !cursor; }

  render(initial.clusters, false);
  setCursor(nextCursor);
  more.addEventListener("click", function () {
    call("GET", API + "?" + query({ cursor: nextCursor })).then(function (data) {
      render(data.clusters, false); setCursor(data.next_cursor);
    });
  });
  document.getElementById("mark-all").addEventListener("click", function () {
    call("POST", API + "read?" + query()).then(function (data) {
      counted(data);
      call("GET", API + "?" + query()).then(function (page) {
        list.textContent = ""; render(page.clusters, false); setCursor(page.next_cursor);
      });
    });
  });
  var optin = document.getElementById("digest-optin");
  optin.addEventListener("change", function () {
    call("PUT", API + "settings", { receive_notification_email: optin.checked })
      .catch(function () { optin.checked = !optin.checked; });
  });
  // New notifications: the newest page again, its clusters moved or added to the top.
  document.addEventListener("gs:notifications", function () {
    call("GET", API + "?" + query()).then(function (page) {
      render(page.clusters, true);
    });
  });
})();
