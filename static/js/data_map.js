// The data map (templates/experiments/data_map.html): a Chart.js scatter of every image, coloured by
// label or by whether the model got it right, with the image's thumbnail in the tooltip. The same
// points are in the page's table for keyboard and screen-reader users.
(function () {
  "use strict";
  var canvas = document.getElementById("data-map");
  var source = document.getElementById("data-map-data");
  var tooltip = document.getElementById("map-tooltip");
  var thumb = document.getElementById("data-map-thumb");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  // Okabe-Ito, then a few more: colour-blind friendly for up to 8 classes.
  var PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
    "#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74", "#80ba5a", "#e68310", "#008695"];
  var RIGHT = "#009e73", WRONG = "#d55e00";

  function thumbUrl(path) {
    return thumb.dataset.url.replace(/PATH$/, path.split("/").map(encodeURIComponent).join("/"));
  }

  function byLabel() {
    return data.labels.map(function (label, i) {
      return {
        label: label,
        data: data.points.filter(function (p) { return p.label === label; }),
        backgroundColor: PALETTE[i % PALETTE.length],
        pointRadius: 4,
      };
    });
  }

  function byCorrect() {
    return [
      { label: "right", data: data.points.filter(function (p) { return p.correct; }), backgroundColor: RIGHT,
        pointRadius: 3 },
      { label: "wrong", data: data.points.filter(function (p) { return !p.correct; }), backgroundColor: WRONG,
        pointStyle: "triangle", pointRadius: 6 },
    ];
  }

  function percent(p) { return (100 * p).toFixed(1) + "%"; }

  function external(context) {
    var model = context.tooltip;
    if (!model || model.opacity === 0 || !model.dataPoints || !model.dataPoints.length) {
      tooltip.hidden = true;
      return;
    }
    var point = model.dataPoints[0].raw;
    tooltip.replaceChildren();
    var img = document.createElement("img");
    img.src = thumbUrl(point.path);
    img.alt = point.name;
    img.width = 96;
    var text = document.createElement("p");
    text.textContent = point.name + " · " + point.label + (point.correct ? "" : " → " + point.predicted) +
      " · " + percent(point.p) + " for " + point.label;
    tooltip.append(img, text);
    tooltip.hidden = false;
    var x = Math.min(model.caretX + 12, canvas.clientWidth - 180);
    tooltip.style.left = Math.max(0, x) + "px";
    tooltip.style.top = Math.max(0, model.caretY - 40) + "px";
  }

  var chart = new Chart(canvas, {
    type: "scatter",
    data: { datasets: byLabel() },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: { xAxisKey: "x", yAxisKey: "y" },
      scales: { x: { display: false }, y: { display: false } },
      plugins: { tooltip: { enabled: false, external: external }, legend: { position: "bottom" } },
    },
  });

  document.querySelectorAll("input[name=map-colour]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      chart.data.datasets = radio.value === "correct" ? byCorrect() : byLabel();
      chart.update();
    });
  });
})();
