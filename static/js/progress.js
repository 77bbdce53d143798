/* Live progress bars: each [data-progress-url] element follows its SSE stream
   (event: progress, then done or failed) and updates its bar, its label and the
   status badges marked [data-status-for="<id>"]. Each event is passed on as a
   "strongbox:progress" event on the box (detail: {type, data}) for the rest of the page
   (live_run.js: phases and the facts of a finished run). Never reloads the page. No
   library needed. */
(function () {
  "use strict";

  var LABELS = {
    "scheduled": "Scheduled", "in-progress": "In progress", "completed": "Completed",
    "aborting": "Aborting", "aborted": "Aborted", "failed": "Failed",
    "not-supported": "Not supported", "deleting": "Deleting", "deleted": "Deleted"
  };

  function words(value) {
    var text = String(value || "").replace(/[_-]/g, " ").trim().toLowerCase();
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function human(bytes) {
    if (bytes === null || bytes === undefined) { return ""; }
    var units = ["bytes", "KB", "MB", "GB", "TB"], i = 0, n = bytes;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    seconds = Math.round(seconds);
    if (seconds < 60) { return seconds + " s"; }
    var m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) { return m + " min " + s + " s"; }
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function setStatus(id, status) {
    var nodes = document.querySelectorAll('[data-status-for="' + id + '"]');
    Array.prototype.forEach.call(nodes, function (el) {
      el.textContent = LABELS[status] || status;
      el.className = "status status-" + status;
      el.setAttribute("data-status", status);
    });
  }

  function render(box, data) {
    var bar = box.querySelector("[role=progressbar]");
    var fill = box.querySelector(".bar-fill");
    var label = box.querySelector(".progress-label");
    var pct = data.percent;
    if (pct === null || pct === undefined) {
      box.classList.add("indeterminate");
      bar.removeAttribute("aria-valuenow");
      label.textContent = data.status === "scheduled" ? "Waiting for a worker…"
        : (data.phase ? data.phase.toLowerCase().replace(/_/g, " ") + "…" : "Working…");
    } else {
      box.classList.remove("indeterminate");
      var shown = Math.round(pct);
      bar.setAttribute("aria-valuenow", String(shown));
      fill.style.width = shown + "%";
      var text = shown + " %";
      if (data.bytesTotal) { text += " · " + human(data.bytesDone) + " of " + human(data.bytesTotal); }
      if (data.etaSeconds) { text += " · about " + duration(data.etaSeconds) + " left"; }
      label.textContent = text;
    }
    var eta = document.querySelector('[data-eta-for="' + box.getAttribute("data-backup-id") + '"]');
    if (eta) { eta.textContent = data.phase ? "Phase: " + data.phase.toLowerCase().replace(/_/g, " ") : ""; }
  }

  function passOn(box, type, data) {
    box.dispatchEvent(new CustomEvent("strongbox:progress", {bubbles: true, detail: {type: type, data: data}}));
  }

  function follow(box) {
    var id = box.getAttribute("data-backup-id");
    var source = new EventSource(box.getAttribute("data-progress-url"));
    source.addEventListener("progress", function (e) {
      var data = JSON.parse(e.data);
      render(box, data);
      setStatus(id, data.status);
      passOn(box, e.type, data);
    });
    function finish(e) {
      source.close();
      var data = JSON.parse(e.data);
      render(box, data);
      setStatus(id, data.status);
      box.classList.add(e.type === "done" ? "finished" : "stopped");
      var eta = document.querySelector('[data-eta-for="' + id + '"]');
      if (eta) { eta.textContent = ""; }  // no phase is current any more
      box.setAttribute("data-final", e.type);
      if (e.type === "failed" && data.message) {
        box.querySelector(".progress-label").textContent = data.message;
      }
      passOn(box, e.type, data);
    }
    source.addEventListener("done", finish);
    source.addEventListener("failed", finish);
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        box.querySelector(".progress-label").textContent = "Live progress unavailable; reload the page.";
      }
    };
  }

  window.strongboxFormat = {words: words, human: human, duration: duration};

  // Streams open once the whole page is parsed and every deferred script listens.
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-progress-url]"), follow);
  });
}());
