// The models page's threshold control. As the slider moves it shows precision, recall and coverage
// on the model's validation images, summed in the page from the curve embedded beside it
// ([[confidence, correct], ...], most confident first): the sums of at_threshold in
// workers/ml/stats.py. "Find threshold" moves the slider to the lowest threshold reaching a target
// precision (stats.threshold_for_precision). Nothing is saved until the form is submitted.
(function () {
  "use strict";

  function percent(p) { return (100 * p).toFixed(1) + "%"; }

  // The slider is in percent; thresholds, like the curve's confidences, have 6 decimals (the page
  // view rounds a saved one the same way), so a threshold picked at an image's confidence keeps it.
  function fraction(value) { return Math.round(Number(value) * 1e4) / 1e6; }

  function atThreshold(curve, threshold) {
    var accepted = 0, hits = 0;
    for (var i = 0; i < curve.length && curve[i][0] >= threshold; i++) {
      accepted += 1;
      hits += curve[i][1];
    }
    return {
      accepted: accepted,
      coverage: accepted / curve.length,
      precision: accepted ? hits / accepted : null,
      recall: hits / curve.length,
    };
  }

  // The lowest threshold whose accepted images reach `target` precision (null when none does), and
  // the best precision there is, for the message when none does.
  function forPrecision(curve, target) {
    var found = { threshold: null, best: -1, bestAt: 1 };
    var hits = 0;
    for (var i = 0; i < curve.length; i++) {
      hits += curve[i][1];
      if (i + 1 < curve.length && curve[i + 1][0] >= curve[i][0]) continue;  // not the last of its value
      var precision = hits / (i + 1);
      if (precision >= target) found.threshold = curve[i][0];
      if (precision >= found.best) { found.best = precision; found.bestAt = curve[i][0]; }
    }
    return found;
  }

  function setup(box) {
    var data = box.querySelector('script[type="application/json"]');
    var curve = data ? JSON.parse(data.textContent) : null;
    var range = box.querySelector("input[type=range]");
    var output = box.querySelector(".threshold-value");
    var figures = box.querySelector(".threshold-figures");
    var target = box.querySelector(".threshold-target");

    function update() {
      var threshold = fraction(range.value);
      var shown = percent(threshold);
      output.textContent = shown;
      range.setAttribute("aria-valuetext", shown);
      if (!curve) return;
      var e = atThreshold(curve, threshold);
      figures.textContent = "At " + shown + ": precision " +
        (e.precision === null ? "— (no image answered)" : percent(e.precision)) +
        ", recall " + percent(e.recall) + ", coverage " + percent(e.coverage) + " (" + e.accepted +
        " of " + curve.length + " validation images answered).";
    }

    range.addEventListener("input", update);
    update();
    if (!curve || !target) return;

    var input = target.querySelector("input");
    var error = target.querySelector(".threshold-target-error");
    function find() {
      var wanted = Number(input.value) / 100;
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      if (input.value === "" || !(wanted > 0 && wanted <= 1)) {
        error.textContent = "Give a target precision above 0 and at most 100%.";
        input.setAttribute("aria-invalid", "true");
        return;
      }
      var found = forPrecision(curve, wanted);
      if (found.threshold === null) {
        error.textContent = "No threshold reaches " + percent(wanted) + " precision on these " + curve.length +
          " validation images; the most is " + percent(found.best) + ", at threshold " + percent(found.bestAt) + ".";
        input.setAttribute("aria-invalid", "true");
        return;
      }
      range.value = (100 * found.threshold).toFixed(4);
      update();
    }
    target.hidden = false;
    target.querySelector("[data-find]").addEventListener("click", find);
    // Enter in the target field finds a threshold; it must not submit (save) the form.
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        find();
      }
    });
  }

  document.querySelectorAll("[data-threshold]").forEach(setup);
})();
