// Datasets and fine-tuning pages: upload with a progress bar, live validation status,
// the new-job estimate, and the live job page. No framework; every request goes to
// this site only. Each part does nothing on a page without its markup, and each page
// works without this file (plain form posts, a refresh tag, a "Review" button).
(function () {
  "use strict";

  var POLL_MS = 2000;

  function getJSON(url, signal) {
    return fetch(url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      signal: signal,
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    });
  }

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  // Upload ------------------------------------------------------------------

  function setupUpload(form) {
    var input = form.querySelector('input[type="file"]');
    var nameLabel = form.querySelector("[data-file-name]");
    var box = form.querySelector("[data-progress]");
    var bar = box.querySelector(".progress");
    var fill = bar.querySelector("span");
    var label = box.querySelector("[data-progress-label]");
    var value = box.querySelector("[data-progress-value]");
    var button = form.querySelector('button[type="submit"]');
    var dropzone = form.querySelector(".dropzone");
    var maxBytes = Number(form.getAttribute("data-max-bytes")) || Infinity;

    function showName() {
      var file = input.files && input.files[0];
      nameLabel.textContent = file ? file.name + " · " + formatBytes(file.size) : "Choose a file or drop it here";
    }
    input.addEventListener("change", showName);
    ["dragenter", "dragover"].forEach(function (name) {
      dropzone.addEventListener(name, function () { dropzone.classList.add("is-dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      dropzone.addEventListener(name, function () { dropzone.classList.remove("is-dragging"); });
    });

    function setProgress(percent, text) {
      var shown = Math.max(0, Math.min(100, Math.round(percent)));
      fill.style.width = shown + "%";
      bar.setAttribute("aria-valuenow", String(shown));
      value.textContent = shown + " %";
      if (text) { label.textContent = text; }
    }

    function showErrors(errors) {
      form.querySelectorAll("[data-field]").forEach(function (field) {
        field.classList.remove("has-error");
        field.querySelector("[data-errors]").textContent = "";
      });
      Object.keys(errors).forEach(function (name) {
        var field = form.querySelector('[data-field="' + name + '"]') || form.querySelector('[data-field="file"]');
        field.classList.add("has-error");
        errors[name].forEach(function (error) {
          var line = document.createElement("p");
          line.className = "error";
          line.textContent = error.message;
          field.querySelector("[data-errors]").appendChild(line);
        });
      });
    }

    function fail(message) {
      box.classList.add("is-failed");
      label.textContent = message;
      button.disabled = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = input.files && input.files[0];
      if (!file) { showErrors({ file: [{ message: "Choose a file to upload." }] }); return; }
      if (file.size > maxBytes) {
        showErrors({ file: [{ message: "The file is " + formatBytes(file.size) + "; a file may be at most " + formatBytes(maxBytes) + "." }] });
        return;
      }
      showErrors({});
      box.hidden = false;
      box.classList.remove("is-done", "is-failed");
      button.disabled = true;
      setProgress(0, "Uploading " + file.name + "…");

      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      request.upload.onprogress = function (progress) {
        if (progress.lengthComputable) {
          setProgress(100 * progress.loaded / progress.total,
            "Uploading " + file.name + " · " + formatBytes(progress.loaded) + " of " + formatBytes(progress.total));
        }
      };
      request.onerror = function () { fail("The upload was interrupted. Check your connection and try again."); };
      request.onload = function () {
        var body = null;
        try { body = JSON.parse(request.responseText); } catch (ignored) { body = null; }
        if (request.status === 201 && body) {
          setProgress(100, body.status === "uploaded" ? "Uploaded. Validating…" : "Uploaded.");
          box.classList.add("is-done");
          window.setTimeout(function () { window.location.assign(body.url); }, 600);
        } else if (body && body.errors) {
          box.hidden = true;
          button.disabled = false;
          showErrors(body.errors);
        } else {
          fail("The upload failed (HTTP " + request.status + "). Try again.");
        }
      };
      var data = new FormData(form);
      request.send(data);
    });
  }

  // A file being validated: reload once its status changes -------------------

  function pollFile(card) {
    var url = card.getAttribute("data-file-poll");
    function tick() {
      getJSON(url).then(function (body) {
        if (body.status !== "uploaded") { window.location.reload(); return; }
        window.setTimeout(tick, POLL_MS);
      }, function () { window.setTimeout(tick, POLL_MS * 3); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  // The new-job estimate ------------------------------------------------------

  function setupEstimate(form) {
    var url = form.getAttribute("data-estimate-url");
    var panel = form.querySelector("[data-estimate]");
    var review = form.querySelector("[data-review]");
    var timer = null;
    var inFlight = null;
    if (review) { review.hidden = true; }  // the estimate follows the fields by itself

    function refresh() {
      var params = new URLSearchParams(new FormData(form));
      params.delete("csrfmiddlewaretoken");
      params.delete("action");
      if (inFlight) { inFlight.abort(); }
      inFlight = new AbortController();
      panel.classList.add("is-loading");
      getJSON(url + "?" + params.toString(), inFlight.signal).then(function (body) {
        panel.innerHTML = body.html;
        panel.classList.remove("is-loading");
      }, function (error) {
        if (error.name !== "AbortError") { panel.classList.remove("is-loading"); }
      });
    }
    function soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 300);
    }
    form.addEventListener("change", soon);
    form.addEventListener("input", soon);
  }

  // The live job page -----------------------------------------------------------

  function setupJob(root) {
    if (root.getAttribute("data-terminal") === "true") { return; }
    var url = root.getAttribute("data-job-live");
    var events = root.getAttribute("data-events");
    function tick() {
      getJSON(url + "?events=" + encodeURIComponent(events)).then(function (body) {
        if (body.is_terminal) { window.location.reload(); return; }  // buttons and banners change
        Object.keys(body.html).forEach(function (name) {
          var target = root.querySelector('[data-live="' + name + '"]');
          if (target) { target.innerHTML = body.html[name]; }
        });
        events = String(body.n_events);
        window.setTimeout(tick, POLL_MS);
      }, function () { window.setTimeout(tick, POLL_MS * 3); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.querySelectorAll("form[data-upload]").forEach(setupUpload);
  document.querySelectorAll("[data-file-poll]").forEach(pollFile);
  document.querySelectorAll("form[data-estimate-url]").forEach(setupEstimate);
  document.querySelectorAll("[data-job-live]").forEach(setupJob);
})();
