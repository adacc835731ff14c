// Overlay the compared experiments' curves: one chart for loss, one for accuracy.
// Training is a solid line, validation a dashed one, in the experiment's colour.
(function () {
  "use strict";
  var data = document.getElementById("compare-series");
  if (!data || typeof Chart === "undefined") return;
  var series = JSON.parse(data.textContent);

  function datasets(metric) {
    var out = [];
    series.forEach(function (s) {
      [["", metric, []], [" (val.)", "val_" + metric, [6, 4]]].forEach(function (kind) {
        out.push({
          label: s.name + kind[0],
          data: s.history
            .filter(function (h) { return h[kind[1]] !== null; })
            .map(function (h) { return { x: h.epoch, y: h[kind[1]] }; }),
          borderColor: s.color,
          backgroundColor: s.color,
          borderDash: kind[2],
          pointRadius: 2,
          tension: 0.15,
        });
      });
    });
    return out;
  }

  function legendLines(chartInstance) {
    var items = Chart.defaults.plugins.legend.labels.generateLabels(chartInstance);
    items.forEach(function (item) {
      item.lineDash = chartInstance.data.datasets[item.datasetIndex].borderDash;
      item.lineWidth = 3;
      item.pointStyle = "line";
    });
    return items;
  }

  function chart(id, metric, yTitle) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: { datasets: datasets(metric) },
      options: {
        maintainAspectRatio: false,
        animation: false,
        parsing: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: yTitle } },
        },
        // A short line as each legend key, so that dashed (validation) reads as dashed.
        plugins: {
          legend: {
            position: "bottom",
            labels: { usePointStyle: true, pointStyleWidth: 30, generateLabels: legendLines },
          },
        },
      },
    });
  }

  chart("compare-loss", "loss", "loss");
  chart("compare-accuracy", "accuracy", "accuracy");
})();
