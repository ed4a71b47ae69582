// Draws every <div class="chart" data-series="ID"> from the JSON in <script id="ID">, with uPlot.
// x values are Unix seconds: uPlot renders the axis as dates. No network, no inline script.
(function () {
  "use strict";
  var palette = ["#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41"];
  function draw(el) {
    var source = document.getElementById(el.dataset.series);
    if (!source || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var series = [{ label: "time" }];
    spec.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: s.color || palette[i % palette.length], width: 2,
        dash: s.dash || undefined, points: { show: true, size: 6 }, spanGaps: true });
    });
    var opts = { title: spec.title || "", width: Math.max(320, el.clientWidth - 12), height: spec.height || 220,
      series: series, scales: { x: { time: true } }, axes: [{}, { label: spec.ylabel || "" }] };
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
