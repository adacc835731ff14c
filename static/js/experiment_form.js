// The new-experiment form (templates/experiments/experiment_form.html). Each field's container
// carries the modes that read it (data-modes) and, for momentum, the optimizer it needs
// (data-requires), rendered from the option declarations in workers/ml/options.py: a field shows
// only where its config would be read, and a hidden field is disabled so it is not sent. Presets
// fill the form in place; the base experiments follow the dataset and backbone; the error summary
// takes focus and its links go to their fields. Without JS every field shows, the preset links
// reload the page, and the server still checks everything.
(function () {
  "use strict";
  var form = document.getElementById("experiment-form");
  if (!form) return;

  function field(name) { return form.elements.namedItem(name); }
  function value(name) { var el = field(name); return el ? el.value : ""; }

  function readHere(el) {
    var modes = el.dataset.modes;
    if (modes && modes.split(" ").indexOf(value("mode")) < 0) return false;
    var requires = el.dataset.requires; // "optimizer=sgd"
    if (requires) {
      var parts = requires.split("=");
      if (parts[1].split(" ").indexOf(value(parts[0])) < 0) return false;
    }
    return true;
  }

  function applyModes() {
    form.querySelectorAll("[data-modes], [data-requires]").forEach(function (el) { el.hidden = !readHere(el); });
    form.querySelectorAll("input, select, textarea").forEach(function (input) {
      if (input.type !== "hidden") input.disabled = !!input.closest("[hidden]");
    });
  }

  // Only a succeeded bottleneck run on the chosen dataset and backbone can be fine-tuned from.
  function filterBases() {
    var select = field("base_experiment");
    if (!select) return;
    var any = false;
    Array.prototype.forEach.call(select.options, function (option) {
      if (!option.value) return;
      var fits = option.dataset.dataset === value("dataset") && option.dataset.backbone === value("backbone");
      option.hidden = option.disabled = !fits;
      if (fits) any = true;
      else if (option.selected) select.value = "";
    });
    var none = document.getElementById("base-none");
    if (none) none.hidden = any || value("mode") !== "finetune";
  }

  // A fine-tune trains at its base's image size: choosing a base sets it.
  function followBase() {
    var option = field("base_experiment").selectedOptions[0];
    if (!option || !option.dataset.imageSize) return;
    var size = option.dataset.imageSize.split(" ");
    field("image_height").value = size[0];
    field("image_width").value = size[1];
  }

  form.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "mode" || name === "optimizer") applyModes();
    if (name === "mode" || name === "dataset" || name === "backbone") filterBases();
    if (name === "base_experiment") followBase();
  });

  var presetData = document.getElementById("preset-values");
  var presets = presetData ? JSON.parse(presetData.textContent) : {};
  var status = document.getElementById("preset-status");
  document.querySelectorAll("a[data-preset]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var values = presets[link.dataset.preset];
      if (!values) return; // the link's own ?preset= reload still works
      event.preventDefault();
      var typedName = value("name").trim();
      Object.keys(values).forEach(function (name) {
        var el = field(name);
        if (!el || (name === "name" && typedName)) return;
        if (el.type === "checkbox") el.checked = values[name] === true;
        else el.value = values[name];
      });
      applyModes();
      filterBases();
      field("mode").dispatchEvent(new Event("change", { bubbles: true })); // the estimate follows
      if (status) status.textContent = link.textContent + " applied: " + value("mode") + " mode. Nothing starts until you press Start.";
    });
  });

  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-field]");
      var input = link && document.getElementById(link.dataset.field);
      if (!input) return;
      event.preventDefault();
      var details = input.closest("details");
      if (details) details.open = true;
      var label = form.querySelector('label[for="' + input.id + '"]') || input.closest("label") || input;
      label.scrollIntoView({ block: "center" });
      input.focus({ preventScroll: true });
    });
  }

  applyModes();
  filterBases();
  if (summary) summary.focus();
})();
