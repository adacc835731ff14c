// "Create a token and fill it in" (templates/predictions/curl_example.html): creates an API token for the
// signed-in user and writes it into the commands, so that they work when pasted. Without JavaScript the
// form posts to the account page, which shows the new token.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("form[data-token-fill]");
    if (!form) return;
    event.preventDefault();
    var button = form.querySelector("button");
    var region = document.getElementById("sr-announcer");
    var note = form.querySelector(".help");
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value, Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "the server answered " + response.status);
          return body;
        });
      })
      .then(function (body) {
        document.querySelectorAll("[data-token-slot]").forEach(function (slot) { slot.textContent = body.key; });
        note.textContent = body.message;
        if (region) region.textContent = body.message;
      })
      .catch(function (error) {
        note.textContent = "No token was created: " + error.message;
        if (region) region.textContent = note.textContent;
      })
      .finally(function () { button.disabled = false; });
  });
})();
