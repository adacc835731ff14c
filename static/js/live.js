// Live parts of a page (job status, experiment and model lists) are refreshed by htmx with the
// idiomorph "morph" swap, which updates the nodes in place: a focused button stays focused and
// the page does not scroll. When the focused node itself goes (the Cancel button once the job
// has ended), focus moves to the refreshed part's [data-focus-fallback] instead of to <body>,
// so a keyboard user stays where they were (docs/decisions.md, "Live pages morph").
(function () {
  "use strict";
  var hadFocus = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    hadFocus = target && active && active !== document.body && target.contains(active) ? target.id : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!hadFocus) return;
    var root = document.getElementById(hadFocus);
    hadFocus = null;
    var active = document.activeElement;
    if (!root || (active && active !== document.body && document.contains(active))) return;
    var fallback = root.querySelector("[data-focus-fallback]");
    if (fallback) fallback.focus();
  });
})();
