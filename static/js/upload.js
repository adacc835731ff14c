// Dataset uploads: a zip, or a folder picked with <input webkitdirectory> sent in batches.
// Plain XHR (not fetch) because only XHR reports upload progress (bytes sent).
(function () {
  "use strict";

  var HIDDEN = /(^|\/)(\.|__MACOSX(\/|$)|Thumbs\.db$|desktop\.ini$)/i;

  function csrf(form) {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  function humanBytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function ui(form) {
    var box = form.querySelector(".upload-progress");
    return {
      bar: box.querySelector("progress"),
      text: box.querySelector(".help"),
      error: form.querySelector(".error"),
      button: form.querySelector("button[type=submit]"),
      start: function () { box.hidden = false; this.error.textContent = ""; this.button.disabled = true; },
      fail: function (message) { this.error.textContent = message; this.button.disabled = false; },
      show: function (sent, total, note) {
        this.bar.value = total ? sent / total : 0;
        this.text.textContent = humanBytes(sent) + " of " + humanBytes(total) + " sent" + (note ? " · " + note : "");
      }
    };
  }

  // POST a FormData; onProgress(loaded, total) while the body goes up; resolves with the JSON answer.
  function send(url, form, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf(form));
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("Accept", "application/json");
      if (onProgress) {
        xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded, e.total); };
      }
      xhr.onload = function () {
        var data = {};
        try { data = JSON.parse(xhr.responseText || "{}"); } catch (err) { data = {}; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject({ status: xhr.status, message: data.error || ("The server answered " + xhr.status + ".") });
      };
      xhr.onerror = function () { reject({ status: 0, message: "The connection was lost." }); };
      xhr.send(body);
    });
  }

  function setupZip(form) {
    var view = ui(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) { view.fail("Choose a zip file to upload."); return; }
      if (file.size > Number(form.dataset.maxBytes)) {
        view.fail(file.name + " is " + humanBytes(file.size) + "; the limit is " + humanBytes(Number(form.dataset.maxBytes)) + ".");
        return;
      }
      var body = new FormData();
      body.append("archive", file);
      view.start();
      send(form.action, form, body, function (loaded, total) {
        view.show(file.size * loaded / total, file.size);
      }).then(function (data) {
        view.show(file.size, file.size, "received; checking the images");
        window.location.assign(data.url);
      }, function (err) { view.fail(err.message); });
    });
  }

  function visibleFiles(input) {
    return Array.prototype.filter.call(input.files, function (f) {
      return !HIDDEN.test(f.webkitRelativePath || f.name);
    });
  }

  function setupFolder(form) {
    var view = ui(form);
    var input = form.querySelector("input[type=file]");
    var summary = form.querySelector(".folder-summary");
    var batchSize = Number(form.dataset.batchFiles) || 50;

    input.addEventListener("change", function () {
      var files = visibleFiles(input);
      var bytes = files.reduce(function (s, f) { return s + f.size; }, 0);
      summary.textContent = files.length + " files, " + humanBytes(bytes) + " (hidden files are not sent)";
    });

    async function sendBatch(url, batch, done, total) {
      var body = new FormData();
      batch.forEach(function (f) {
        body.append("paths", f.webkitRelativePath || f.name);
        body.append("files", f, f.name);
      });
      var bytes = batch.reduce(function (s, f) { return s + f.size; }, 0);
      for (var attempt = 0; ; attempt++) {
        try {
          return await send(url, form, body, function (loaded, size) {
            view.show(done + bytes * loaded / size, total);
          });
        } catch (err) {
          // Only a dropped connection is retried: the server stores a batch whole or not at all.
          if (err.status !== 0 || attempt >= 2) throw err;
        }
      }
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var files = visibleFiles(input);
      if (!files.length) { view.fail("Choose a folder with images."); return; }
      if (files.length > Number(form.dataset.maxFiles)) { view.fail("The folder has more than " + form.dataset.maxFiles + " files."); return; }
      var total = files.reduce(function (s, f) { return s + f.size; }, 0);
      if (total > Number(form.dataset.maxBytes)) { view.fail("The folder is over " + humanBytes(Number(form.dataset.maxBytes)) + "."); return; }
      view.start();
      try {
        var session = await send(form.action, form, new FormData());
        batchSize = session.batch_files || batchSize;
        var done = 0;
        for (var i = 0; i < files.length; i += batchSize) {
          var batch = files.slice(i, i + batchSize);
          await sendBatch(session.files_url, batch, done, total);
          done += batch.reduce(function (s, f) { return s + f.size; }, 0);
          view.show(done, total, Math.min(i + batchSize, files.length) + " of " + files.length + " files");
        }
        var result = await send(session.finish_url, form, new FormData());
        view.show(total, total, "received; checking the images");
        window.location.assign(result.url);
      } catch (err) {
        view.fail(err.message);
      }
    });
  }

  var zip = document.getElementById("zip-form");
  var folder = document.getElementById("folder-form");
  if (zip) setupZip(zip);
  if (folder) setupFolder(folder);
})();
