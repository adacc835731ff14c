// Copy buttons: <button data-copy="ID"> copies the text of the element with that id (the export
// snippets of the models page). Delegated from the document, so buttons that htmx swaps in work too.
(function () {
  "use strict";

  function fallbackCopy(text) {
    // navigator.clipboard exists only in secure contexts (https or localhost).
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    var copy = navigator.clipboard && window.isSecureContext ? navigator.clipboard.writeText(text) : fallbackCopy(text);
    var label = button.firstChild;
    var original = label.textContent;
    var region = document.getElementById("sr-announcer");
    copy.then(function () {
      label.textContent = "Copied";
      if (region) region.textContent = "Snippet copied to the clipboard.";
    }, function () {
      label.textContent = "Select and copy";
      if (region) region.textContent = "Copying was refused by the browser: select the snippet and copy it.";
    });
    setTimeout(function () { label.textContent = original; }, 2000);
  });
})();
