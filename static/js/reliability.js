// The reliability diagram on an experiment's page: accuracy against mean confidence per confidence
// bin, before and after temperature scaling, beside the diagonal a calibrated model lies on (data
// from json_script, as the table below it shows). Drawn on load and again when the live status part
// brings the finished evaluation in (htmx:afterSettle).
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("reliability-chart");
    var source = document.getElementById("reliability-data");
    if (!canvas || !source || typeof Chart === "undefined" || Chart.getChart(canvas)) return;
    var data = JSON.parse(source.textContent);
    var percent = function (value) { return Math.round(value * 100) + "%"; };
    new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          { label: "perfectly calibrated", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, pointRadius: 0,
            borderColor: "#767676", borderDash: [4, 4] },
          { label: "before", data: data.before, showLine: true, borderColor: "#d55e00", backgroundColor: "#d55e00" },
          { label: "after (served)", data: data.after, showLine: true, borderColor: "#0072b2", backgroundColor: "#0072b2" }
        ]
      },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: {
          title: { display: true, text: "Reliability: accuracy against confidence" },
          tooltip: { callbacks: { label: function (item) {
            var p = item.raw;
            return p.n === undefined ? item.dataset.label
              : item.dataset.label + ": " + p.n + " images, " + percent(p.x) + " sure, " + percent(p.y) + " right";
          } } }
        },
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: "mean confidence" }, ticks: { callback: percent } },
          y: { min: 0, max: 1, title: { display: true, text: "accuracy" }, ticks: { callback: percent } }
        }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
