// Draws every <div class="chart" data-series="ID"> from the JSON in <script id="ID">, with uPlot.
// x values are Unix seconds (uPlot renders the axis as dates), or positions 0..n-1 named by
// spec.labels (the loop's spans). No network, no inline script.
(function () {
  "use strict";
  var palette = ["#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41"];
  function draw(el) {
    var source = document.getElementById(el.dataset.series);
    if (!source || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var labels = spec.labels || null;
    var series = [labels ? { label: "span", value: function (u, i) {
      return i == null || labels[i] === undefined ? "--" : labels[i];
    } } : { label: "time" }];
    spec.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: s.color || palette[i % palette.length], width: 2,
        dash: s.dash || undefined, points: { show: true, size: 6 }, spanGaps: true });
    });
    var xaxis = labels ? { label: "span", space: 40, incrs: [1, 2, 5, 10, 20, 50],
      values: function (u, splits) {
        return splits.map(function (i) { return labels[i] === undefined ? "" : labels[i]; });
      } } : {};
    var opts = { title: spec.title || "", width: Math.max(320, el.clientWidth - 12), height: spec.height || 220,
      series: series, scales: { x: { time: !labels } }, axes: [xaxis, { label: spec.ylabel || "" }],
      legend: { live: true } };
    var chart = new uPlot(opts, spec.data, el);
    el.dataset.drawn = "true";
    el.uplot = chart;
  }
  document.querySelectorAll("div.chart[data-series]").forEach(draw);
  document.querySelectorAll(".scroll[data-scroll-end]").forEach(function (el) {
    el.scrollLeft = el.scrollWidth;
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.dataset.confirm)) { ev.preventDefault(); }
    });
  });
})();
