/* Juxing web UI behaviour: countdowns, stock bars, charts from JSON blocks, live rooms.
   Loaded as a static file (CSP: script-src 'self'); pages stay usable without it. */
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tickCountdowns(root) {
    var now = Date.now();
    (root || document).querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var until = Date.parse(el.getAttribute("data-until"));
      var out = el.querySelector(".cd-value");
      if (!out || isNaN(until)) return;
      var left = Math.max(0, Math.floor((until - now) / 1000));
      var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600);
      var m = Math.floor(left % 3600 / 60), s = left % 60;
      out.textContent = (d > 0 ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(s);
    });
  }

  function fillBars(root) {
    (root || document).querySelectorAll("[data-pct]").forEach(function (el) {
      el.style.width = Math.max(0, Math.min(100, Number(el.getAttribute("data-pct")))) + "%";
    });
  }

  var PALETTE = ["#d9001b", "#ff8a00", "#1a56db", "#0a7a3b", "#7e3af2", "#5b5b66"];

  function drawCharts(root) {
    if (typeof window.Chart === "undefined") return;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var source = document.getElementById(canvas.getAttribute("data-chart"));
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      spec.data.datasets.forEach(function (ds, i) {
        var c = ds.color || PALETTE[i % PALETTE.length];
        delete ds.color;
        ds.borderColor = ds.borderColor || c;
        ds.backgroundColor = ds.backgroundColor || (spec.type === "line" ? c + "22" : c);
        if (spec.type === "line") { ds.fill = ds.fill !== undefined ? ds.fill : true; ds.tension = 0.3; ds.pointRadius = 0; }
      });
      canvas.dataset.drawn = "1";
      new window.Chart(canvas, {
        type: spec.type,
        data: spec.data,
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { display: spec.data.datasets.length > 1 } },
          scales: spec.type === "doughnut" ? {} : { y: { beginAtZero: true } }
        }
      });
    });
  }

  /* A live room: server-sent events from /api/v1/live-rooms/{id}/events. ``snapshot`` is the
     whole room, ``pin``/``status`` the pinned product and status, ``tick`` viewers and stock. */
  function liveRooms(root) {
    (root || document).querySelectorAll("[data-live-stream]").forEach(function (el) {
      if (el.dataset.connected || typeof window.EventSource === "undefined") return;
      el.dataset.connected = "1";
      var revision = Number(el.getAttribute("data-revision") || 0);
      var source = new EventSource(el.getAttribute("data-live-stream"));
      function text(sel, value) {
        el.querySelectorAll(sel).forEach(function (n) { n.textContent = value; });
      }
      function setViewers(n) { if (n !== undefined && n !== null) text(".live-viewers", String(n)); }
      function setStatus(status) {
        if (!status) return;
        var badge = el.querySelector(".live-status");
        if (badge) badge.setAttribute("data-status", status);
        text(".live-status-text", el.getAttribute("data-label-" + status) || status);
        el.setAttribute("data-room-status", status);
      }
      function setPinned(id, title) {
        el.querySelectorAll("[data-room-item]").forEach(function (n) {
          n.classList.toggle("is-pinned", String(id) === n.getAttribute("data-room-item"));
        });
        var out = el.querySelector(".pinned-title");
        if (out) out.textContent = title || el.getAttribute("data-label-none") || "";
        el.setAttribute("data-pinned", id === null || id === undefined ? "" : String(id));
      }
      function setStock(items) {
        (items || []).forEach(function (item) {
          var box = el.querySelector('[data-room-item="' + item.id + '"]');
          if (!box) return;
          var left = box.querySelector(".stock-left");
          var tpl = el.getAttribute("data-label-left") || "{n} left";
          if (left && item.stock_left !== null && item.stock_left !== undefined) {
            left.textContent = tpl.replace("{n}", item.stock_left);
          }
          box.classList.toggle("is-sold-out", !!item.sold_out);
        });
      }
      function parse(event) {
        try { return JSON.parse(event.data); } catch (e) { return null; }
      }
      source.addEventListener("snapshot", function (event) {
        var room = parse(event);
        if (!room) return;
        revision = Number(room.revision || revision);
        setViewers(room.viewers);
        setStatus(room.status);
        var pinned = (room.items || []).filter(function (i) { return i.id === room.pinned_item_id; })[0];
        setPinned(room.pinned_item_id, pinned ? pinned.title : null);
        setStock(room.items);
        el.setAttribute("data-connected-live", "1");
      });
      ["pin", "status"].forEach(function (name) {
        source.addEventListener(name, function (event) {
          var data = parse(event);
          if (!data) return;
          if (event.lastEventId && Number(event.lastEventId) <= revision) return;
          revision = Number(data.revision || event.lastEventId || revision);
          setStatus(data.status);
          setPinned(data.pinned_item_id, data.pinned ? data.pinned.title : null);
        });
      });
      source.addEventListener("tick", function (event) {
        var data = parse(event);
        if (!data) return;
        setViewers(data.viewers);
        setStock(data.items);
      });
    });
  }

  function enhance(root) { fillBars(root); tickCountdowns(root); drawCharts(root); liveRooms(root); }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    setInterval(function () { tickCountdowns(document); }, 1000);
  });
  // After an htmx swap (feed pages, refreshed product cards) enhance the whole document: with
  // outerHTML swaps the event's target is the element that was replaced.
  document.addEventListener("htmx:afterSettle", function () { enhance(document); });
  window.juxing = { enhance: enhance };
})();
