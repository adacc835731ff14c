// Screen-reader announcements for parts of a page that htmx polls and swaps (job and dataset
// status). A swapped element is a new node, which live regions do not reliably announce, and
// announcing the whole region every poll would be noise: instead each such element carries a
// short data-announce text, and only a change of that text is spoken, from one stable region.
(function () {
  "use strict";
  var spoken = {};

  function remember(root, speak) {
    var region = document.getElementById("sr-announcer");
    var nodes = root.matches && root.matches("[data-announce]") ? [root] : [];
    nodes = nodes.concat(Array.prototype.slice.call(root.querySelectorAll("[data-announce]")));
    nodes.forEach(function (node) {
      var key = node.id || "page";
      var text = node.dataset.announce;
      if (speak && region && spoken[key] !== text) region.textContent = text;
      spoken[key] = text;
    });
  }

  document.addEventListener("DOMContentLoaded", function () { remember(document, false); });
  document.addEventListener("htmx:afterSettle", function (event) { remember(event.detail.elt, true); });
})();
