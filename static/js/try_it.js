// "Try it": drop or pick an image, POST it to /api/v1/models/<id>/predict/ with the session
// cookie and the CSRF header, and draw the class probabilities as bars.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function percent(p) { return (100 * p).toFixed(1) + " %"; }

  // The API names inputs as "image[0] (photo.jpg) (input 0): ..."; here there is one input, the
  // user's file, so the message starts with its name alone.
  function errorMessage(status, data, fileName) {
    if (data && data.errors && data.errors.length) {
      return data.errors.map(function (e) {
        return e.message.replace(/^image\[\d+\] (?:\(.*?\) )?\(input \d+\): /, fileName + ": ");
      }).join(" ");
    }
    if (data && data.detail) return data.detail;
    return "The server answered " + status + ".";
  }

  function setup(box) {
    var form = box.querySelector("form");
    var input = box.querySelector("input[type=file]");
    var select = box.querySelector("select[name=model]");
    var zone = box.querySelector(".dropzone");
    var preview = box.querySelector(".try-preview");
    var status = box.querySelector(".try-status");
    var result = box.querySelector(".try-result");
    var error = box.querySelector(".try-error");
    var token = box.querySelector("input[name=csrfmiddlewaretoken]").value;
    var explain = box.querySelector("input[name=explain]");
    var lastFile = null;

    function modelUrl() {
      var option = select ? select.options[select.selectedIndex] : null;
      return option ? option.dataset.url : box.dataset.url;
    }

    function show(data) {
      var prediction = data.predictions[0];
      result.replaceChildren();
      var head = el("p", "try-answer");
      head.append(el("strong", "try-label", prediction.label), " with probability ",
        el("span", "try-confidence", percent(prediction.confidence)),
        el("span", "muted", " · model v" + data.model.version));
      result.append(head);
      // Below the model's threshold the API says accepted: false: the honest answer is "unknown".
      var threshold = data.model.threshold;
      if (threshold !== null && threshold !== undefined) {
        result.append(prediction.accepted
          ? el("p", "try-verdict accepted", "Accepted: at least the model's " + percent(threshold) + " threshold.")
          : el("p", "try-verdict unknown", "Not accepted: below the model's " + percent(threshold) +
            " threshold, so the answer is “unknown”."));
      }
      var list = el("ul", "prob-bars");
      Object.keys(prediction.probabilities).forEach(function (name) {
        var p = prediction.probabilities[name];
        var row = el("li", name === prediction.label ? "top" : "");
        row.append(el("span", "prob-name", name));
        var bar = el("span", "bar");
        bar.setAttribute("aria-hidden", "true");
        var fill = el("span");
        fill.style.width = Math.max(0.5, 100 * p).toFixed(1) + "%";
        bar.append(fill);
        row.append(bar, el("span", "prob-value", percent(p)));
        list.append(row);
      });
      result.append(list);
      if (prediction.explanation) {
        var figure = el("figure", "try-explanation");
        var overlay = el("img");
        overlay.src = "data:image/png;base64," + prediction.explanation.png_base64;
        overlay.alt = "Where the model looked for " + prediction.label + " (heatmap over the image)";
        figure.append(overlay, el("figcaption", "help", "Where the model looked for " + prediction.label +
          " (Grad-CAM, layer " + prediction.explanation.layer + ")"));
        result.append(figure);
      }
    }

    function send(file) {
      if (!file) {
        error.textContent = "Choose or drop an image first.";
        return;
      }
      lastFile = file;
      error.textContent = "";
      result.replaceChildren();
      if (file.type && file.type.indexOf("image/") !== 0) {
        error.textContent = file.name + " is not an image.";
        return;
      }
      preview.replaceChildren();
      var img = el("img");
      img.alt = "The image you chose: " + file.name;
      img.src = URL.createObjectURL(file);
      img.onload = function () { URL.revokeObjectURL(img.src); };
      img.onerror = function () { URL.revokeObjectURL(img.src); preview.replaceChildren(); };
      preview.append(img);
      status.textContent = "Asking the model about " + file.name + "…";
      box.setAttribute("aria-busy", "true");
      var body = new FormData();
      body.append("image", file);
      if (explain && explain.checked) body.append("explain", "true");
      fetch(modelUrl(), {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token, Accept: "application/json" },
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) throw new Error(errorMessage(response.status, data, file.name));
          return data;
        });
      }).then(function (data) {
        status.textContent = "Answer for " + file.name + ":";
        show(data);
      }).catch(function (err) {
        status.textContent = "";
        error.textContent = err.message || "The request failed.";
      }).finally(function () {
        box.removeAttribute("aria-busy");
      });
    }

    input.addEventListener("change", function () { send(input.files[0]); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(input.files[0] || lastFile);
    });
    if (select) select.addEventListener("change", function () { if (lastFile) send(lastFile); });
    if (explain) explain.addEventListener("change", function () { if (lastFile) send(lastFile); });

    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) send(files[0]);
    });
  }

  document.querySelectorAll("[data-try-it]").forEach(setup);
})();
