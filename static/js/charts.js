// TokenScope insight charts: small SVG line and bar charts drawn from JSON the page embeds in
// <script type="application/json"> elements (no inline script, no third-party code; CSP-safe).
// Each chart element names its data (data-source), the value to plot (data-value) and a format.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fmt(value, kind) {
    if (kind === "usd") {
      return "$" + (value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(2) : value.toFixed(4));
    }
    if (value >= 1e9) { return (value / 1e9).toFixed(1) + "B"; }
    if (value >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (value >= 1e3) { return (value / 1e3).toFixed(1) + "k"; }
    return String(Math.round(value));
  }

  function readData(id) {
    var source = document.getElementById(id);
    if (!source) { return []; }
    try { return JSON.parse(source.textContent); } catch (e) { return []; }
  }

  function lineChart(box, rows, key, kind) {
    var w = 560, h = 200, pad = { l: 56, r: 12, t: 12, b: 28 };
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, class: "chart-svg", focusable: "false" });
    var values = rows.map(function (r) { return Number(r[key]) || 0; });
    var max = Math.max.apply(null, values.concat([0])) || 1;
    var iw = w - pad.l - pad.r, ih = h - pad.t - pad.b;
    var x = function (i) { return pad.l + (rows.length > 1 ? (i * iw) / (rows.length - 1) : iw / 2); };
    var y = function (v) { return pad.t + ih - (v / max) * ih; };
    [0, 0.5, 1].forEach(function (f) {
      svg.appendChild(el("line", { x1: pad.l, x2: w - pad.r, y1: y(max * f), y2: y(max * f), class: "grid" }));
      svg.appendChild(el("text", { x: pad.l - 6, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, fmt(max * f, kind)));
    });
    var points = values.map(function (v, i) { return x(i) + "," + y(v); }).join(" ");
    if (values.length) {
      var area = pad.l + "," + y(0) + " " + points + " " + x(values.length - 1) + "," + y(0);
      svg.appendChild(el("polygon", { points: area, class: "area" }));
      svg.appendChild(el("polyline", { points: points, class: "line" }));
    }
    values.forEach(function (v, i) {
      var dot = el("circle", { cx: x(i), cy: y(v), r: 2.5, class: "dot" });
      dot.appendChild(el("title", {}, rows[i].label + ": " + fmt(v, kind)));
      svg.appendChild(dot);
    });
    var step = Math.max(1, Math.ceil(rows.length / 6));
    rows.forEach(function (r, i) {
      if (i % step === 0 || i === rows.length - 1) {
        svg.appendChild(el("text", { x: x(i), y: h - 8, class: "axis", "text-anchor": "middle" }, r.label));
      }
    });
    box.appendChild(svg);
  }

  function barChart(box, rows, key, kind) {
    rows = rows.slice(0, 12);
    var rowH = 22, w = 560, labelW = 170, valueW = 70;
    var h = Math.max(rowH, rows.length * rowH) + 4;
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, class: "chart-svg", focusable: "false" });
    var max = Math.max.apply(null, rows.map(function (r) { return Number(r[key]) || 0; }).concat([0])) || 1;
    var iw = w - labelW - valueW;
    if (!rows.length) {
      svg.appendChild(el("text", { x: 4, y: 16, class: "axis" }, "No data in this period"));
    }
    rows.forEach(function (r, i) {
      var v = Number(r[key]) || 0;
      var top = i * rowH + 2;
      var label = String(r.label);
      svg.appendChild(el("text", { x: labelW - 6, y: top + 14, class: "axis", "text-anchor": "end" },
        label.length > 26 ? label.slice(0, 25) + "…" : label));
      var bar = el("rect", { x: labelW, y: top + 3, width: Math.max(1, (v / max) * iw), height: rowH - 8, class: "bar" });
      bar.appendChild(el("title", {}, label + ": " + fmt(v, kind)));
      svg.appendChild(bar);
      svg.appendChild(el("text", { x: labelW + (v / max) * iw + 4, y: top + 14, class: "axis" }, fmt(v, kind)));
    });
    box.appendChild(svg);
  }

  function draw() {
    var charts = document.querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(charts, function (box) {
      var rows = readData(box.dataset.source);
      var kind = box.dataset.format || "int";
      box.textContent = "";
      if (box.dataset.chart === "line") {
        lineChart(box, rows, box.dataset.value, kind);
      } else {
        barChart(box, rows, box.dataset.value, kind);
      }
      box.setAttribute("data-drawn", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
