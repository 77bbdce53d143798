/* Schedule editor: show the custom cron fields only when chosen, and refresh the next
   five runs (in the schedule's timezone) from the server as the form changes. */
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) { return; }

  function toggleCustom() {
    Array.prototype.forEach.call(form.querySelectorAll("[data-show-when]"), function (box) {
      var rule = box.getAttribute("data-show-when").split("=");
      var select = document.getElementById(rule[0]);
      var hasError = box.querySelector(".error");
      box.hidden = !(select && select.value === rule[1]) && !hasError;
    });
  }

  function renderRuns(kind, data) {
    var list = form.querySelector('[data-runs="' + kind + '"]');
    var description = form.querySelector('[data-runs-description="' + kind + '"]');
    list.innerHTML = "";
    if (!data.runs.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "Not scheduled";
      list.appendChild(empty);
    }
    data.runs.forEach(function (run) {
      var item = document.createElement("li");
      var time = document.createElement("time");
      time.setAttribute("datetime", run.iso);
      time.textContent = run.text;
      item.appendChild(time);
      list.appendChild(item);
    });
    description.textContent = data.description || "";
  }

  var pending = null;
  function refresh() {
    toggleCustom();
    window.clearTimeout(pending);
    pending = window.setTimeout(function () {
      var params = new URLSearchParams(new FormData(form));
      params.delete("csrfmiddlewaretoken");
      fetch(form.getAttribute("data-next-runs-url") + "?" + params.toString(), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) { return response.json(); }).then(function (data) {
        renderRuns("db", data.db);
        renderRuns("full", data.full);
        var tz = form.querySelector("[data-runs-timezone]");
        if (tz) { tz.textContent = "(" + data.timezone + ")"; }
        var errors = Object.keys(data.errors);
        form.querySelector('[data-runs-description="db"]').textContent =
          (data.db.description || "") + (errors.length ? " — " + data.errors[errors[0]][0] : "");
      }).catch(function () { /* the server-rendered runs stay */ });
    }, 250);
  }

  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  toggleCustom();
}());
