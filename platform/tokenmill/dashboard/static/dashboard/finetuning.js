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

  // A running batch: its counts and status follow the run; reload when it ends ---

  function pollBatch(box) {
    var url = box.getAttribute("data-batch-poll");
    function show(body) {
      var status = box.querySelector("[data-batch-status]") || document.querySelector("[data-batch-status]");
      if (status) {
        status.textContent = body.status_label;
        status.className = "status status-batch-" + body.status;
      }
      var bar = box.querySelector("[data-batch-progress] .progress");
      if (bar) {
        bar.setAttribute("aria-valuenow", String(body.percent));
        bar.querySelector("span").style.width = body.percent + "%";
      }
      ["done", "total", "completed", "failed"].forEach(function (name) {
        var cell = box.querySelector('[data-count="' + name + '"]');
        if (cell) { cell.textContent = body[name].toLocaleString("en-US"); }
      });
    }
    function tick() {
      getJSON(url).then(function (body) {
        show(body);
        if (body.terminal) { window.location.reload(); return; }
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
  //
  // The page polls its status URL with the id of the last metrics event it has
  // (`after`): the answer carries only the chart points recorded since, and the
  // chart is drawn again here. Keep drawLossChart in step with dashboard/charts.py,
  // which draws the same chart when the page loads.

  var CHART = { width: 720, height: 280, left: 64, right: 16, top: 12, bottom: 48 };
  var MAX_POINTS = 400, CLIP_SHARE = 0.1, CLIP_FACTOR = 1.5, CLIP_MIN_POINTS = 10;
  var SERIES = [
    ["train", "Training loss", "t"],
    ["valid", "Validation loss", "v"],
    ["full-valid", "Full validation loss", "f"],
  ];

  function round1(value) { return Math.round(value * 10) / 10; }
  function grouped(value) { return Math.round(value).toLocaleString("en-US"); }

  function stepSize(span, count) {
    var raw = span / count;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var multiples = [1, 2, 5, 10];
    for (var i = 0; i < multiples.length; i += 1) {
      if (multiples[i] * power >= raw) { return multiples[i] * power; }
    }
    return 10 * power;
  }

  function stepTicks(last) {
    var size = Math.max(1, Math.round(stepSize(last, 5)));
    var ticks = [];
    for (var at = 0; at <= last; at += size) { ticks.push(at); }
    if (last - ticks[ticks.length - 1] > size / 2) { ticks.push(last); }
    else { ticks[ticks.length - 1] = last; }
    return ticks;
  }

  function niceRange(low, high) {
    var step = stepSize(high - low, 4);
    var bottom = Math.floor(low / step) * step, top = Math.ceil(high / step) * step;
    var ticks = [];
    for (var i = 0; i <= Math.round((top - bottom) / step); i += 1) { ticks.push(bottom + i * step); }
    return { ticks: ticks, low: bottom, high: top };
  }

  function tickLabel(value, ticks) {
    var step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return value.toFixed(decimals);
  }

  function thin(column) {
    if (column.length <= MAX_POINTS) { return column; }
    var stride = Math.ceil(column.length / MAX_POINTS);
    var thinned = column.filter(function (_, i) { return i % stride === 0; });
    if (thinned[thinned.length - 1] !== column[column.length - 1]) { thinned.push(column[column.length - 1]); }
    return thinned;
  }

  function clipHigh(columns, lastStep) {
    var train = columns.train;
    if (train.length < CLIP_MIN_POINTS) { return null; }
    var firstSteps = train[0][0] + CLIP_SHARE * (lastStep - train[0][0]);
    var rest = [], early = -Infinity;
    SERIES.forEach(function (s) {
      columns[s[0]].forEach(function (p) {
        if (p[0] > firstSteps) { rest.push(p[1]); }
        early = Math.max(early, p[1]);
      });
    });
    if (!rest.length) { return null; }
    var high = Math.max.apply(null, rest);
    return early > CLIP_FACTOR * high ? high : null;
  }

  function drawLossChart(points, totalSteps) {
    var c = CHART, columns = {}, values = [], lastStep = 0;
    SERIES.forEach(function (s) {
      columns[s[0]] = points.filter(function (p) { return typeof p[s[2]] === "number"; })
        .map(function (p) { return [p.s, p[s[2]]]; })
        .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      columns[s[0]].forEach(function (p) { values.push(p[1]); lastStep = Math.max(lastStep, p[0]); });
    });
    if (!values.length) {
      return '<div class="chart-empty"><p class="muted">No metrics yet. The chart draws itself as training reports its steps.</p></div>';
    }
    var xHigh = Math.max(lastStep, totalSteps || 0, 1);
    var low = Math.min.apply(null, values);
    var high = clipHigh(columns, lastStep);
    if (high === null) { high = Math.max.apply(null, values); }
    var pad = (high - low) * 0.04 || Math.max(Math.abs(high) * 0.1, 0.05);
    var range = niceRange(low >= 0 ? Math.max(low - pad, 0) : low - pad, high + pad);
    var right = c.width - c.right, bottom = c.height - c.bottom;
    function x(step) { return round1(c.left + (c.width - c.left - c.right) * step / xHigh); }
    function y(loss) {
      var span = (range.high - range.low) || 1;
      return round1(c.top + (c.height - c.top - c.bottom) * (range.high - Math.min(loss, range.high)) / span);
    }
    var svg = ['<svg class="loss-chart" viewBox="0 0 ' + c.width + " " + c.height + '" role="img" aria-labelledby="loss-chart-title" preserveAspectRatio="xMidYMid meet">',
      '<title id="loss-chart-title">Training and validation loss by step</title>', '<g class="chart-grid">'];
    range.ticks.forEach(function (t) { svg.push('<line x1="' + c.left + '" x2="' + right + '" y1="' + y(t) + '" y2="' + y(t) + '"/>'); });
    svg.push('</g><g class="chart-axis chart-axis-y">');
    range.ticks.forEach(function (t) {
      svg.push('<text x="' + (c.left - 8) + '" y="' + y(t) + '" dy="0.32em" text-anchor="end">' + tickLabel(t, range.ticks) + "</text>");
    });
    svg.push('</g><g class="chart-axis chart-axis-x"><line x1="' + c.left + '" x2="' + right + '" y1="' + bottom + '" y2="' + bottom + '"/>');
    stepTicks(xHigh).forEach(function (t) {
      svg.push('<text x="' + x(t) + '" y="' + (bottom + 18) + '" text-anchor="middle">' + grouped(t) + "</text>");
    });
    svg.push('</g><g class="chart-axis-titles">',
      '<text class="chart-axis-title" x="' + (c.left + right) / 2 + '" y="' + c.height + '" dy="-4" text-anchor="middle">Step</text>',
      '<text class="chart-axis-title" transform="rotate(-90)" x="-' + (c.top + bottom) / 2 + '" y="14" text-anchor="middle">Loss</text></g>');
    var legend = [], above = [];
    SERIES.forEach(function (s) {
      var key = s[0], label = s[1], full = columns[key], column = thin(full);
      full.forEach(function (p) { if (p[1] > range.high) { above.push(p); } });
      if (!column.length) { return; }
      svg.push('<g class="chart-series series-' + key + '">');
      if (column.length > 1) {
        svg.push('<path d="M' + column.map(function (p) { return x(p[0]) + " " + y(p[1]); }).join(" L") + '"/>');
      }
      var marked = key !== "train" || column.length === 1 ? column : column.slice(-1);
      marked.forEach(function (p) {
        svg.push('<circle cx="' + x(p[0]) + '" cy="' + y(p[1]) + '" r="4"><title>Step ' + grouped(p[0]) + ": " + label.toLowerCase() + " " + p[1].toFixed(4) + "</title></circle>");
      });
      svg.push("</g>");
      legend.push('<span class="legend-item series-' + key + '"><span class="legend-swatch" aria-hidden="true"></span>' + label + " <strong>" + column[column.length - 1][1].toFixed(4) + "</strong></span>");
    });
    svg.push("</svg>");
    var html = '<figure class="loss-chart-figure">' + svg.join("") + '<figcaption class="chart-legend">' + legend.join("") + "</figcaption>";
    if (above.length) {
      var highest = Math.max.apply(null, above.map(function (p) { return p[1]; }));
      var upTo = Math.max.apply(null, above.map(function (p) { return p[0]; }));
      html += '<p class="chart-note muted small" data-chart-note>The first steps reach a loss of ' + highest.toFixed(2) + " (up to step " + upTo + "); they are drawn at the top edge so that the rest of the curve stays readable.</p>";
    }
    return html + "</figure>";
  }

  function setupJob(root) {
    if (root.getAttribute("data-follow") !== "true") { return; }
    var url = root.getAttribute("data-job-live");
    var state = {
      events: root.getAttribute("data-events"),
      checkpoints: root.getAttribute("data-checkpoints"),
      after: root.getAttribute("data-after") || "",
    };
    var source = document.getElementById("chart-points");
    var points = source ? JSON.parse(source.textContent) : [];
    var totalSteps = null;
    points.forEach(function (p) { if (p.n) { totalSteps = p.n; } });
    var chart = root.querySelector("[data-live-chart]");

    function query() {
      return "?events=" + encodeURIComponent(state.events) +
        "&checkpoints=" + encodeURIComponent(state.checkpoints) +
        "&after=" + encodeURIComponent(state.after);
    }

    function tick() {
      getJSON(url + query()).then(function (body) {
        Object.keys(body.html).forEach(function (name) {
          var target = root.querySelector('[data-live="' + name + '"]');
          if (target) { target.innerHTML = body.html[name]; }
        });
        if (body.metrics.length) {
          body.metrics.forEach(function (p) { points.push(p); if (p.n) { totalSteps = p.n; } });
          if (chart) { chart.innerHTML = drawLossChart(points, totalSteps); }
        }
        state.events = String(body.n_events);
        state.checkpoints = String(body.n_checkpoints);
        state.after = body.cursor || "";
        if (body.more) { window.setTimeout(tick, 0); }
        else if (body.follows) { window.setTimeout(tick, POLL_MS); }
      }, function () { window.setTimeout(tick, POLL_MS * 3); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.querySelectorAll("form[data-upload]").forEach(setupUpload);
  document.querySelectorAll("[data-file-poll]").forEach(pollFile);
  document.querySelectorAll("[data-batch-poll]").forEach(pollBatch);
  document.querySelectorAll("form[data-estimate-url]").forEach(setupEstimate);
  document.querySelectorAll("[data-job-live]").forEach(setupJob);
})();
