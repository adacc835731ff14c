// Bar chart of images per class and split on the dataset report page (data from json_script).
(function () {
  "use strict";
  var canvas = document.getElementById("class-chart");
  var source = document.getElementById("class-chart-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: "train", data: data.train, backgroundColor: "#2f5fd0" },
        { label: "validation", data: data.validation, backgroundColor: "#a86400" },
        { label: "test", data: data.test, backgroundColor: "#1b7f5a" }
      ]
    },
    options: { responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
})();
