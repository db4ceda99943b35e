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

  function liveRooms(root) {
    (root || document).querySelectorAll("[data-live-stream]").forEach(function (el) {
      if (el.dataset.connected || typeof window.EventSource === "undefined") return;
      el.dataset.connected = "1";
      var source = new EventSource(el.getAttribute("data-live-stream"));
      var list = el.querySelector(".live-events");
      var viewers = el.querySelector(".live-viewers");
      source.onmessage = function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        if (viewers && data.viewers !== undefined) viewers.textContent = data.viewers;
        if (list && data.text) {
          var li = document.createElement("li");
          li.textContent = data.text;
          list.insertBefore(li, list.firstChild);
          while (list.children.length > 30) list.removeChild(list.lastChild);
        }
      };
      ["comment", "product", "stats", "message"].forEach(function (name) {
        source.addEventListener(name, source.onmessage);
      });
    });
  }

  function enhance(root) { fillBars(root); tickCountdowns(root); drawCharts(root); liveRooms(root); }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    setInterval(function () { tickCountdowns(document); }, 1000);
  });
  document.addEventListener("htmx:afterSwap", function (e) { enhance(e.target); });
  window.juxing = { enhance: enhance };
})();
